// The CLI's `key` and `package` commands (docs/packages.md): key generation, building, signing,
// verifying, inspecting and locally testing task packages. Called from cli_main.cpp's dispatch;
// each function parses its own options and returns the process exit code. Single-threaded.
#pragma once

#include <string>
#include <vector>

namespace sparecycles::cli {

/// $XDG_CONFIG_HOME/sparecycles/NAME, else ~/.config/sparecycles/NAME; empty without either.
std::string ClientConfigPath(const std::string& name);
/// `sparecycles key SUBCOMMAND ...`; `args` excludes "key".
int KeyCommand(const std::vector<std::string>& args);
/// `sparecycles package SUBCOMMAND ...`; `args` excludes "package".
int PackageCommand(const std::vector<std::string>& args);

}  // namespace sparecycles::cli
