#pragma once
// Subcommands of the `layerwise` executable. Each returns the process exit code;
// engine errors propagate to main(), the one place that catches them.
#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace layerwise::app {

void addInspectCommand(CLI::App& app, int& exitCode);
void addDevicesCommand(CLI::App& app, int& exitCode);
void addPlanCommand(CLI::App& app, int& exitCode);
void addBenchCommand(CLI::App& app, int& exitCode);
void addGenerateCommand(CLI::App& app, int& exitCode);
void addChatCommand(CLI::App& app, int& exitCode);
void addTokenizeCommand(CLI::App& app, int& exitCode);
int runGui(int argc, char** argv);

} // namespace layerwise::app
