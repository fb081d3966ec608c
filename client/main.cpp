// SPDX-License-Identifier: AGPL-3.0-or-later
// file-restore: the CLI. All logic lives in the client library (cli.cpp).
#include <csignal>

#include "client/cli.h"
#include "client/protocol_session.h"

int main(int argc, char **argv)
{
	// Writes to a closed stdout (`| head`) fail with EPIPE instead of
	// killing us before we clean up partial output.
	(void)std::signal(SIGPIPE, SIG_IGN);
	auto sessions = fr::client::makeProtocolSessionFactory();
	return fr::client::runCli(argc, argv, *sessions);
}
