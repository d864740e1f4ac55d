# The `dann` tool end to end on the two-moons toy (ctest: cli_moons).
# -DDANN=path of the tool, -DWORK=scratch folder, -DEMULATOR=how to run a
# cross-built tool (a list joined by "|"; empty natively).

# Runs the tool with ARGN, expects exit status `expected`; OUT and ERR get the
# output streams.
string(REPLACE "|" ";" EMULATOR "${EMULATOR}")

function(dann expected)
  execute_process(COMMAND ${EMULATOR} ${DANN} ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                  ERROR_VARIABLE err)
  if(NOT rc EQUAL expected)
    string(REPLACE ";" " " line "${ARGN}")
    message(FATAL_ERROR "dann ${line}: exit status ${rc}, expected ${expected}\nstdout: ${out}\nstderr: ${err}")
  endif()
  set(OUT "${out}" PARENT_SCOPE)
  set(ERR "${err}" PARENT_SCOPE)
endfunction()

function(expect text pattern)
  if(NOT text MATCHES "${pattern}")
    message(FATAL_ERROR "expected output matching '${pattern}', got:\n${text}")
  endif()
endfunction()

# The last line of stdout, where --json puts its result.
function(last_line text var)
  string(STRIP "${text}" text)
  string(REGEX REPLACE "^.*\n" "" line "${text}")
  set(${var} "${line}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE ${WORK})
set(M ${WORK}/moons)

dann(0 data moons --out ${M} --samples 200 --test-samples 300 --seed 7 --json)
last_line("${OUT}" json)
expect("${json}" "^\\{\"out\": \".*\", .*\"source-features\": \".*/source-features\"")
foreach(name source-features source-labels target-features target-labels test-features test-labels)
  if(NOT EXISTS ${M}/${name})
    message(FATAL_ERROR "dann data moons did not write ${name}")
  endif()
endforeach()

# Usage errors: exit status 2, one line naming the option.
dann(2 data moons --out ${M} --samplse 10)
expect("${ERR}" "^dann data moons: unknown option --samplse \\(did you mean --samples\\?\\)")
dann(2 eval --images ${M}/test-features --labels ${M}/test-labels)
expect("${ERR}" "^dann eval: missing option --model MODEL")
dann(2 data moons --out ${M} --noise abc)
expect("${ERR}" "--noise: expected a number, got 'abc'")
dann(2 nonsense)

# Failures: exit status 1, one line.
dann(1 eval --model ${WORK}/absent.dann --images ${M}/test-features --labels ${M}/test-labels)
expect("${ERR}" "^dann eval: cannot load model .*absent.dann")
dann(1 info --model ${M}/test-labels)
expect("${ERR}" "^dann info: cannot load model")

dann(0 train --arch mlp:8 --source-images ${M}/source-features --source-labels ${M}/source-labels
     --target-images ${M}/target-features --steps 60 --log-every 20 --out ${WORK}/tiny.dann
     --log ${WORK}/log.csv --plot ${WORK}/curves.svg
     --eval-images ${M}/test-features --eval-labels ${M}/test-labels --quiet --json)
last_line("${OUT}" json)
expect("${json}" "^\\{\"model\": \".*tiny.dann\", .*\"steps\": 60, .*\"eval_accuracy\": [0-9.e-]+")
file(READ ${WORK}/curves.svg svg)
expect("${svg}" "^<svg .*<polyline .*</svg>\n$")
file(READ ${WORK}/log.csv csv)
expect("${csv}" "^step,p,lr,lambda,label_loss,domain_loss,domain_accuracy,target_entropy,eval_accuracy\n")

dann(0 info --model ${WORK}/tiny.dann --json)
last_line("${OUT}" json)
expect("${json}" "\"input\": \\{\"channels\": 2, \"height\": 1, \"width\": 1\\}, \"classes\": 2, ")

dann(0 eval --model ${WORK}/tiny.dann --images ${M}/test-features --labels ${M}/test-labels --json)
last_line("${OUT}" json)
expect("${json}" "^\\{\"accuracy\": [0-9.e-]+, \"n\": 300\\}$")

dann(0 predict --model ${WORK}/tiny.dann --images ${M}/test-features --out ${WORK}/pred --json)
last_line("${OUT}" json)
expect("${json}" "^\\{\"n\": 300, \"classes\": 2, ")

# A model that cannot read the data, and labels that do not match the samples.
dann(1 eval --model ${WORK}/tiny.dann --images ${M}/test-labels --labels ${M}/test-labels)
expect("${ERR}" "^dann eval: .*test-labels: expected uint8 images")
dann(1 eval --model ${WORK}/tiny.dann --images ${M}/test-features --labels ${M}/source-labels)
expect("${ERR}" "^dann eval: .*source-labels: 200 labels for 300 samples")
# Target labels are read only by the oracle.
dann(2 train --arch mlp:8 --source-images ${M}/source-features --source-labels ${M}/source-labels
     --target-images ${M}/target-features --target-labels ${M}/target-labels --out ${WORK}/x.dann)
expect("${ERR}" "^dann train: --target-labels is read only by --mode target-oracle")

# On-device adaptation: a model with a replay set, adapted by the adapter, and
# the drift score; a model without a replay set needs source files.
dann(0 train --arch mlp:8 --mode source-only --source-images ${M}/source-features
     --source-labels ${M}/source-labels --steps 60 --replay 50 --out ${WORK}/replay.dann --quiet)
dann(0 adapt --model ${WORK}/replay.dann --target-images ${M}/target-features --steps 40
     --lr 0.05 --out ${WORK}/adapted.dann --eval-images ${M}/test-features
     --eval-labels ${M}/test-labels --quiet --json)
last_line("${OUT}" json)
expect("${json}" "\"stats\": \\{\"rounds\": 2, \"steps\": 40, .*\"eval_accuracy_after\": [0-9.e-]+\\}$")
dann(0 info --model ${WORK}/adapted.dann)
expect("${OUT}" "replay +50 samples")
dann(1 adapt --model ${WORK}/tiny.dann --target-images ${M}/target-features --steps 20
     --out ${WORK}/x.dann --quiet)
expect("${ERR}" "^dann adapt: cannot create the adapter: .*replay")
dann(0 adapt --model ${WORK}/tiny.dann --target-images ${M}/target-features --steps 20
     --source-images ${M}/source-features --source-labels ${M}/source-labels --replay 30
     --out ${WORK}/adapted2.dann --quiet --json)
dann(0 drift --model ${WORK}/adapted.dann --images ${M}/target-features --json)
last_line("${OUT}" json)
expect("${json}" "^\\{\"drift\": [0-9.e-]+, \"n\": 200, \"reference\": \"replay set\", \"reference_n\": 50, ")
dann(0 drift --model ${WORK}/tiny.dann --images ${M}/target-features --json)
last_line("${OUT}" json)
expect("${json}" "\"measure\": \"mean P\\(target\\)\"\\}$")
