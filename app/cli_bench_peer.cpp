// `layerwise bench peer MODEL`: the same model and workload through Layerwise and its peer in one
// run — llama.cpp (through llama-cpp-python) for a GGUF file, Hugging Face transformers for a
// model folder — by the peer scripts in tests/bench/, and the ratios they print.
#include "commands.h"

#include "api/layerwise.h"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace layerwise::app {

namespace fs = std::filesystem;

namespace {

// The project's virtualenv interpreter (packaging/setup.sh), or LAYERWISE_PEER_PYTHON.
fs::path peerPython()
{
    if (const char* p = std::getenv("LAYERWISE_PEER_PYTHON"))
        return p;
#ifdef LAYERWISE_VENV_DIR
    return fs::path(LAYERWISE_VENV_DIR) / "bin" / "python";
#else
    return "python3";
#endif
}

std::string shellQuoted(const std::string& s)
{
    std::string q = "'";
    for (char c : s)
        q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

} // namespace

void addPeerBench(CLI::App* bench, int& exitCode)
{
    auto* peer = bench->add_subcommand(
        "peer", "Layerwise against llama.cpp (a GGUF file) or transformers (a model folder) in one run: medians and ratios");
    struct Options {
        std::string model, dtype = "float32";
        int prompt = 64, newTokens = 32, repeats = 3;
    };
    auto o = std::make_shared<Options>();
    peer->add_option("model", o->model, "A GGUF file or a model folder")->required();
    peer->add_option("--dtype", o->dtype, "Layerwise's dtype (float32, bfloat16, float16)")->capture_default_str();
    peer->add_option("--prompt-tokens", o->prompt, "Prompt length")->capture_default_str();
    peer->add_option("--new-tokens", o->newTokens, "Tokens generated")->capture_default_str();
    peer->add_option("--repeats", o->repeats, "Generations (medians are reported)")->capture_default_str();
    peer->callback([o, &exitCode]() {
        const bool gguf = fs::path(o->model).extension() == ".gguf";
        if (!fs::exists(o->model))
            throw IoError("bench peer: '" + o->model + "' does not exist (give a GGUF file or a model folder)");
        const fs::path script = fs::path(LAYERWISE_SOURCE_DIR) / "tests" / "bench" / (gguf ? "run_llama_cpp.py" : "run_transformers.py");
        const fs::path python = peerPython();
        if (python.has_parent_path() && !fs::exists(python))
            throw IoError("bench peer: no Python at " + python.string() +
                          "; run packaging/setup.sh (it makes the virtualenv), or set LAYERWISE_PEER_PYTHON");
        const std::string module = gguf ? "llama_cpp" : "transformers";
        const std::string probe = shellQuoted(python.string()) + " -c 'import " + module + "' 2>/dev/null";
        if (std::system(probe.c_str()) != 0)
            throw UnsupportedError(
                "bench peer: " + python.string() + " cannot import " + module + "; install the peer into it (" +
                (gguf ? std::string("pip install llama-cpp-python: it compiles llama.cpp, about 10 minutes")
                      : std::string("pip install transformers")) +
                ")");
        const fs::path self = fs::read_symlink("/proc/self/exe");
        const std::string command = shellQuoted(python.string()) + " " + shellQuoted(script.string()) + " " + shellQuoted(o->model) +
                                    " --layerwise " + shellQuoted(self.string()) + " --dtype " + shellQuoted(o->dtype) +
                                    " --prompt-tokens " + std::to_string(o->prompt) + " --new-tokens " +
                                    std::to_string(o->newTokens) + " --repeats " + std::to_string(o->repeats);
        std::cout.flush();
        const int status = std::system(command.c_str());
        if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            throw Error("bench peer: " + script.filename().string() + " failed (see its message above)");
        exitCode = 0;
    });
}

} // namespace layerwise::app
