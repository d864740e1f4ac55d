// The subcommands of the `dann` tool. Each takes the arguments after its own
// name (argv[0] is the subcommand's name) and returns the exit status: 0 on
// success, 1 when the work failed, 2 for a mistake in the command line. Each
// prints its own errors as one line, "dann <command>: <what went wrong>".
#pragma once

#include <functional>
#include <string>

namespace dann::tool {

int cmd_data(int argc, char **argv);    // dann data fmnist-m | moons
int cmd_train(int argc, char **argv);   // dann train
int cmd_eval(int argc, char **argv);    // dann eval
int cmd_predict(int argc, char **argv); // dann predict
int cmd_info(int argc, char **argv);    // dann info
int cmd_adapt(int argc, char **argv);   // dann adapt
int cmd_drift(int argc, char **argv);   // dann drift

// Runs `body` and turns its exceptions into the tool's error line and exit
// status: UsageError -> 2 (with a pointer to --help), anything else -> 1.
// `command` is the full name, e.g. "dann data moons".
int run_command(const std::string &command, const std::function<int()> &body);

} // namespace dann::tool

// dann demo (tools/dann/cmd_demo.cpp).
int cmd_demo(int argc, char **argv);
