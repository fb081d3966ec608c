/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* A library for LD_PRELOAD tests: when loaded it creates the file named by
 * $FR_PRELOAD_MARKER. The setuid helper must never load it. */
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((constructor)) static void fr_preload_marker(void)
{
	const char *path = getenv("FR_PRELOAD_MARKER");
	if (path != NULL) {
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0)
			close(fd);
	}
}
