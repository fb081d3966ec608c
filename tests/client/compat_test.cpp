// SPDX-License-Identifier: AGPL-3.0-or-later
// What makes file-restore a drop-in for proxmox-file-restore's callers
// (client/compat.h): booleans written as values, its datastore options'
// syntax, its repository syntax, the error object.
#include "client/compat.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace fr::client {
namespace {

std::vector<std::string> normalised(std::vector<std::string> args)
{
	std::vector<char *> argv;
	for (std::string &a : args)
		argv.push_back(a.data());
	return normaliseBooleanOptions(static_cast<int>(argv.size()), argv.data());
}

TEST(Compat, BooleansWrittenAsValuesBecomeFlags)
{
	using V = std::vector<std::string>;
	// PVE::PBSClient writes "--base64 0|1" and "--zstd 1".
	EXPECT_EQ(normalised({"fr", "list", "s", "p", "--base64", "1"}), (V{"fr", "list", "s", "p", "--base64"}));
	EXPECT_EQ(normalised({"fr", "list", "s", "p", "--base64", "0"}), (V{"fr", "list", "s", "p"}));
	EXPECT_EQ(normalised({"fr", "extract", "--zstd", "TRUE", "--base64=false", "x"}),
		  (V{"fr", "extract", "--zstd", "x"}));
	EXPECT_EQ(normalised({"fr", "--verbose=yes", "--symlinks", "off", "--all=on"}),
		  (V{"fr", "--verbose", "--all"}));
	// A word that is no boolean is the next argument, as before.
	EXPECT_EQ(normalised({"fr", "list", "--base64", "L2V0Yw==", "x"}),
		  (V{"fr", "list", "--base64", "L2V0Yw==", "x"}));
	// A bad value is left for CLI11 to name.
	EXPECT_EQ(normalised({"fr", "--base64=maybe"}), (V{"fr", "--base64=maybe"}));
	// Other options' values are never touched, nor anything after "--".
	EXPECT_EQ(normalised({"fr", "--timeout", "1", "--", "--base64", "0"}),
		  (V{"fr", "--timeout", "1", "--", "--base64", "0"}));
}

TEST(Compat, RemoteRepositoriesAreRecognised)
{
	EXPECT_TRUE(looksLikeRemoteRepository("root@pam@pbs.example:store1"));
	EXPECT_TRUE(looksLikeRemoteRepository("backup-server:store"));
	EXPECT_TRUE(looksLikeRemoteRepository("user@pbs!token@[fe80::1]:8007:store"));
	EXPECT_FALSE(looksLikeRemoteRepository("/srv/backup"));
	EXPECT_FALSE(looksLikeRemoteRepository("./relative:dir"));
	EXPECT_FALSE(looksLikeRemoteRepository("dir/with:colon/in/it"));
	EXPECT_FALSE(looksLikeRemoteRepository("plain"));
}

TEST(Compat, DatastoreOptionsAreChecked)
{
	EXPECT_TRUE(checkDatastoreOptions({}));
	EXPECT_TRUE(checkDatastoreOptions({.ns = "team/a_b/c-1.x", .cryptMode = "none", .driver = "Qemu"}));
	EXPECT_TRUE(checkDatastoreOptions({.ns = "/a/b/"}));
	const std::vector<std::string> bad = {"../x", "a//b/..", "a/b/c/d/e/f/g/h", "-x", "a b", std::string(33, 'n')};
	for (const std::string &ns : bad)
		EXPECT_FALSE(checkDatastoreOptions({.ns = ns})) << ns;
	EXPECT_FALSE(checkDatastoreOptions({.cryptMode = "maybe"}));
	EXPECT_FALSE(checkDatastoreOptions({.driver = "nbd"}));
	// --keyfd must be open; --keyfile and --keyfd exclude each other, and
	// crypt mode none excludes a key.
	const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
	ASSERT_GE(fd, 0);
	EXPECT_TRUE(checkDatastoreOptions({.keyFd = std::to_string(fd), .cryptMode = "encrypt"}));
	EXPECT_FALSE(checkDatastoreOptions({.keyFile = "/k", .keyFd = std::to_string(fd)}));
	EXPECT_FALSE(checkDatastoreOptions({.keyFd = std::to_string(fd), .cryptMode = "none"}));
	::close(fd);
	EXPECT_FALSE(checkDatastoreOptions({.keyFd = std::to_string(fd)}));
	EXPECT_FALSE(checkDatastoreOptions({.keyFd = "3x"}));
}

TEST(Compat, TheErrorObjectServesBothKindsOfCaller)
{
	const nlohmann::json doc = errorJson(5, "the restore VM is still starting");
	EXPECT_EQ(doc["message"], "the restore VM is still starting");
	EXPECT_EQ(doc["code"], 503); // upstream's callers poll on it
	EXPECT_EQ(doc["error"], doc["message"]);
	EXPECT_EQ(doc["exit_code"], 5);
	EXPECT_EQ(httpStatusFor(2), 400);
	EXPECT_EQ(httpStatusFor(3), 404);
	EXPECT_EQ(httpStatusFor(4), 403);
	EXPECT_EQ(httpStatusFor(6), 409);
	EXPECT_EQ(httpStatusFor(1), 500);
	EXPECT_EQ(httpStatusFor(130), 500);
}

} // namespace
} // namespace fr::client
