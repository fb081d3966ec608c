/* SPDX-License-Identifier: AGPL-3.0-or-later */
/* A static /init for tests/helper/vm_boot_test.cpp: proves what the helper
 * put into the VM. Prints the ticket file (content and mode) and the kernel
 * command line on the console (the helper's --log-fd), then powers off. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <unistd.h>

static void show(const char *label, const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	while (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	printf("FR-GUEST %s=%s\n", label, buf);
	if (fd >= 0)
		close(fd);
}

int main(void)
{
	struct stat st;
	mkdir("/proc", 0555);
	mount("proc", "/proc", "proc", 0, NULL);
	setvbuf(stdout, NULL, _IONBF, 0);
	show("ticket", "/ticket");
	if (stat("/ticket", &st) == 0)
		printf("FR-GUEST ticket-mode=%o uid=%u\n", (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid);
	show("cmdline", "/proc/cmdline");
	printf("FR-GUEST done\n");
	sync();
	reboot(RB_POWER_OFF);
	reboot(RB_AUTOBOOT); /* -no-reboot turns this into QEMU's exit too */
	for (;;)
		pause();
}
