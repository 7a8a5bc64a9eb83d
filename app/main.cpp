// layerwise: no arguments starts the GUI; a subcommand runs the CLI.
#include "commands.h"

#include "api/layerwise.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

int main(int argc, char** argv)
{
    if (argc == 1 || (argc > 1 && std::string(argv[1]).rfind("-platform", 0) == 0)) {
#ifdef LAYERWISE_WITH_UI
        return layerwise::app::runGui(argc, argv);
#else
        std::fprintf(stderr, "error: this build has no GUI (configured with LAYERWISE_UI=OFF); see layerwise --help\n");
        return 2;
#endif
    }
    CLI::App app{"Layerwise: plan, load, quantize and run big language models on the hardware you have.\n"
                 "Without a subcommand the desktop application starts."};
    app.require_subcommand(1);
    int exitCode = 0;
    layerwise::app::addInspectCommand(app, exitCode);
    layerwise::app::addDevicesCommand(app, exitCode);
    layerwise::app::addPlanCommand(app, exitCode);
    layerwise::app::addBenchCommand(app, exitCode);
    layerwise::app::addGenerateCommand(app, exitCode);
    layerwise::app::addChatCommand(app, exitCode);
    layerwise::app::addTokenizeCommand(app, exitCode);
    layerwise::app::addQuantizeCommand(app, exitCode);
    layerwise::app::addEvalCommand(app, exitCode);
    layerwise::app::addServeCommand(app, exitCode);
    layerwise::app::addWorkerCommand(app, exitCode);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const layerwise::OutOfMemoryError& e) {
        // Its own exit code: a script can re-plan (a lower limit, a shorter context) and retry.
        std::fprintf(stderr, "error: %s\n", e.what());
        return 3;
    } catch (const layerwise::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return 1;
    }
    return exitCode;
}
