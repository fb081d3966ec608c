// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// Tests start (fake or real) QEMUs through a helper that exits at once, so
// the QEMUs are orphans. Where PID 1 does not reap (containers), killed
// ones would stay zombies; a test process that is the child subreaper
// collects them instead.

#include <sys/prctl.h>
#include <sys/wait.h>

namespace fr::client::test {

inline void becomeSubreaper()
{
	::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
}

// Reaps every exited child (orphans included) except those the caller
// still wants to wait for itself.
template <typename Keep>
void reapExited(Keep keep)
{
	for (;;) {
		siginfo_t info {};
		if (::waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT) != 0 || info.si_pid == 0)
			return;
		if (keep(info.si_pid))
			return;
		::waitpid(info.si_pid, nullptr, 0);
	}
}

inline void reapExited()
{
	reapExited([](pid_t) { return false; });
}

} // namespace fr::client::test
