// SPDX-License-Identifier: AGPL-3.0-or-later
// file-restore-helper: placeholder until the helper lands (only --version).
#include <cstdio>
#include <cstring>

#include "fr_config.h"

int main(int argc, char **argv)
{
	if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
		std::printf("file-restore-helper %s\n", FR_VERSION);
		return 0;
	}
	(void)std::fputs("file-restore-helper: usage: file-restore-helper --version\n", stderr);
	return 2;
}
