// `dann`: prepares data, trains, evaluates and inspects DANN models from the
// command line. Each subcommand lives in its own cmd_*.cpp.
#include <cstdio>
#include <cstring>
#include <string>

#include "commands.hpp"
#include "dann.h"

namespace {

const char kUsage[] =
    "Usage: dann <command> [options]\n"
    "\n"
    "Unsupervised domain adaptation by backpropagation (Ganin & Lempitsky), on the CPU.\n"
    "\n"
    "Commands:\n"
    "  data fmnist-m   build the Fashion-MNIST-M target domain from Fashion-MNIST\n"
    "  data moons      write the two-moons toy (source, rotated target, test) as IDX files\n"
    "  train           train a model (DANN, source only, or on labelled target data)\n"
    "  eval            accuracy of a model on labelled images\n"
    "  predict         predicted labels (and probabilities) for images\n"
    "  info            architecture, parameters, replay set and sections of a model file\n"
    "  adapt           adapt a model to unlabelled target images (the on-device adapter)\n"
    "  drift           how far images are from the source, seen by the domain head\n"
    "  demo            the main demo: train, evaluate and plot features before/after\n"
    "\n"
    "Every command takes --help, and --json to print a machine-readable result as the\n"
    "last line of stdout. Exit status: 0 success, 1 failure, 2 bad command line.\n";

} // namespace

int main(int argc, char **argv) {
    if (argc < 2) {
        std::fputs(kUsage, stderr);
        return 2;
    }
    const std::string command = argv[1];
    if (command == "--help" || command == "-h" || command == "help") {
        std::fputs(kUsage, stdout);
        return 0;
    }
    if (command == "--version" || command == "version") {
        std::printf("dann %s\n", dann_version_string());
        return 0;
    }
    using namespace dann::tool;
    if (command == "data") return cmd_data(argc - 1, argv + 1);
    if (command == "train") return cmd_train(argc - 1, argv + 1);
    if (command == "eval") return cmd_eval(argc - 1, argv + 1);
    if (command == "predict") return cmd_predict(argc - 1, argv + 1);
    if (command == "info") return cmd_info(argc - 1, argv + 1);
    if (command == "adapt") return cmd_adapt(argc - 1, argv + 1);
    if (command == "drift") return cmd_drift(argc - 1, argv + 1);
    if (command == "demo") return cmd_demo(argc - 1, argv + 1);
    std::fprintf(stderr, "dann: unknown command '%s' (see dann --help)\n", command.c_str());
    return 2;
}
