// dann data fmnist-m | moons: the data sets of the benchmarks and the toy.
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "args.hpp"
#include "commands.hpp"
#include "data/fmnist_m.hpp"
#include "data/idx.hpp"
#include "data/moons.hpp"
#include "io.hpp"
#include "json.hpp"
#include "progress.hpp"


namespace dann::tool {

namespace {

constexpr const char *kFmnistDefault = "/usr/share/datasets/fashion-mnist";

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Creates `dir` and its missing parents.
void make_dirs(const std::string &dir) {
    for (size_t pos = 1; pos <= dir.size(); ++pos) {
        if (pos != dir.size() && dir[pos] != '/') continue;
        const std::string prefix = dir.substr(0, pos);
        struct stat st {};
        if (stat(prefix.c_str(), &st) == 0) {
            if (!S_ISDIR(st.st_mode)) throw CommandError(prefix + " exists and is not a folder");
            continue;
        }
        if (mkdir(prefix.c_str(), 0777) != 0 && errno != EEXIST)
            throw CommandError("cannot create folder " + prefix + ": " + std::strerror(errno));
    }
}

int fmnist_m(int argc, char **argv) {
    ArgParser args("dann data fmnist-m",
                   "Builds Fashion-MNIST-M, the target domain of the headline benchmark: each\n"
                   "Fashion-MNIST image blended over a random patch of a colour photograph\n"
                   "(the MNIST-M construction of the DANN paper). The output is byte-identical\n"
                   "to the reference builder's (data/SHA256SUMS).");
    args.option("--fmnist", "DIR", "Fashion-MNIST IDX files (dataset-fashion-mnist)", kFmnistDefault)
        .required("--out", "DIR", "output folder (created if missing)")
        .option("--photos", "DIR", "the six photographs (*.ppm.gz)",
                "$DANN_DATA_DIR/photos, else the source tree's or the installed data/photos")
        .flag("--quiet", "no progress line")
        .flag("--json", "print a JSON summary as the last line of stdout")
        .epilog("Writes OUT/{train,t10k}-images-idx4-ubyte (uint8 N x 28 x 28 x 3) and\n"
                "OUT/{train,t10k}-labels-idx1-ubyte (the Fashion-MNIST labels). The target\n"
                "labels exist only to evaluate; adaptation never reads them.");
    if (!args.parse(argc, argv)) return 0;

    const std::string fmnist = args.get("--fmnist", kFmnistDefault);
    const std::string out = args.get("--out");
    const std::string photos = photos_dir(args.get("--photos"));
    make_dirs(out);

    const auto start = std::chrono::steady_clock::now();
    std::vector<std::string> files;
    {
        Progress progress("fmnist-m", 4, "files", !args.has("--quiet"));
        progress.update(0);
        data::build_fmnist_m(fmnist, photos, out,
                             [&](const std::string &file, int done, int) {
                                 files.push_back(file);
                                 progress.update(done);
                             });
    }
    const double seconds = seconds_since(start);
    if (args.has("--json")) {
        json::Value list = json::Value::array();
        for (const std::string &file : files) list.push(file);
        std::printf("%s\n", json::Value::object()
                                .add("out", out)
                                .add("photos", photos)
                                .add("files", list)
                                .add("seconds", seconds)
                                .str()
                                .c_str());
    } else {
        for (const std::string &file : files) std::printf("%s\n", file.c_str());
    }
    return 0;
}

int moons(int argc, char **argv) {
    ArgParser args("dann data moons",
                   "Writes the two-moons toy of the DANN paper (JMLR 2016, section 5.1): a\n"
                   "labelled source set, a target set rotated about the origin, and a test set\n"
                   "drawn like the target.");
    args.required("--out", "DIR", "output folder (created if missing)")
        .option("--angle", "DEG", "rotation of the target and test sets, counter-clockwise", "35")
        .option("--samples", "N", "points per training domain (half per moon)", "300")
        .option("--test-samples", "N", "points in the test set", "1000")
        .option("--noise", "X", "standard deviation of the Gaussian noise", "0.05")
        .option("--seed", "S", "random seed", "1")
        .flag("--json", "print a JSON summary as the last line of stdout")
        .epilog("Writes OUT/{source,target,test}-features (float32 N x 2) and\n"
                "OUT/{source,target,test}-labels (uint8 N: 0 upper moon, 1 lower moon).\n"
                "The target labels exist only to evaluate; adaptation never reads them.\n"
                "\n"
                "Example:\n"
                "  dann data moons --out moons\n"
                "  dann train --arch mlp:15 --source-images moons/source-features \\\n"
                "      --source-labels moons/source-labels --target-images moons/target-features \\\n"
                "      --out moons.dann --eval-images moons/test-features --eval-labels moons/test-labels");
    if (!args.parse(argc, argv)) return 0;

    const std::string out = args.get("--out");
    const double angle = args.get_double("--angle", 35.0, -1e6, 1e6);
    const int samples = static_cast<int>(args.get_int("--samples", 300, 2, data::kMoonsMaxSamples));
    const int test_samples =
        static_cast<int>(args.get_int("--test-samples", 1000, 1, data::kMoonsMaxSamples));
    const double noise = args.get_double("--noise", 0.05, 0.0, 1e6);
    const uint64_t seed = args.get_u64("--seed", 1);

    const data::Moons m = data::make_moons(angle, samples, noise, seed, test_samples);
    make_dirs(out);
    struct Set {
        const char *name;
        const std::vector<float> &x;
        const std::vector<uint8_t> &y;
    };
    const Set sets[] = {{"source", m.source_x, m.source_y},
                        {"target", m.target_x, m.target_y},
                        {"test", m.test_x, m.test_y}};
    json::Value files = json::Value::object();
    for (const Set &set : sets) {
        const uint32_t n = static_cast<uint32_t>(set.y.size());
        const std::string features = out + "/" + set.name + "-features";
        const std::string labels = out + "/" + set.name + "-labels";
        data::write_idx(features, data::make_idx_f32({n, 2}, set.x));
        data::write_idx(labels, data::make_idx_u8({n}, set.y));
        files.add(std::string(set.name) + "-features", features);
        files.add(std::string(set.name) + "-labels", labels);
        if (!args.has("--json"))
            std::printf("%s\n%s\n", features.c_str(), labels.c_str());
    }
    if (args.has("--json"))
        std::printf("%s\n", json::Value::object()
                                .add("out", out)
                                .add("angle", angle)
                                .add("samples", samples)
                                .add("test_samples", test_samples)
                                .add("noise", noise)
                                .add("seed", seed)
                                .add("files", files)
                                .str()
                                .c_str());
    return 0;
}

const char kDataUsage[] = "Usage: dann data <set> [options]\n"
                          "\n"
                          "Sets:\n"
                          "  fmnist-m   Fashion-MNIST-M, the target domain of the benchmark\n"
                          "  moons      the two-moons toy\n"
                          "\n"
                          "See dann data <set> --help.\n";

} // namespace

int cmd_data(int argc, char **argv) {
    if (argc < 2) {
        std::fprintf(stderr, "dann data: which data set? fmnist-m or moons (see dann data --help)\n");
        return 2;
    }
    const std::string set = argv[1];
    if (set == "--help" || set == "-h") {
        std::fputs(kDataUsage, stdout);
        return 0;
    }
    if (set == "fmnist-m")
        return run_command("dann data fmnist-m", [&] { return fmnist_m(argc - 1, argv + 1); });
    if (set == "moons")
        return run_command("dann data moons", [&] { return moons(argc - 1, argv + 1); });
    std::fprintf(stderr, "dann data: unknown data set '%s': fmnist-m or moons\n", set.c_str());
    return 2;
}

} // namespace dann::tool
