// SPDX-License-Identifier: AGPL-3.0-or-later
// file-restore: placeholder CLI until the client lands (only --version).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "fr_config.h"

int main(int argc, char **argv)
{
	CLI::App app{"file-restore: restore single files from VM disk backups"};
	app.set_version_flag("--version", std::string("file-restore ") + FR_VERSION);
	try {
		app.parse(argc, argv);
	} catch (const CLI::ParseError &e) {
		return app.exit(e);
	}
	return 0;
}
