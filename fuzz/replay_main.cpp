// SPDX-License-Identifier: AGPL-3.0-or-later
// Replays a fuzz target's corpus as an ordinary GoogleTest test, so that
// every seed and every crash ever found runs under g++ and the sanitizer
// build too:  <target>_replay <corpus-dir> [gtest flags]
#include <dirent.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>
#include <algorithm>

#include <gtest/gtest.h>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size);

namespace {

std::string gCorpus;

TEST(Corpus, EveryInputRuns)
{
	DIR *dir = ::opendir(gCorpus.c_str());
	ASSERT_NE(dir, nullptr) << "no corpus directory " << gCorpus;
	std::vector<std::string> names;
	while (const dirent *entry = ::readdir(dir)) {
		const std::string name = entry->d_name;
		if (name != "." && name != ".." && name != "README.md")
			names.push_back(name);
	}
	::closedir(dir);
	std::sort(names.begin(), names.end());
	ASSERT_FALSE(names.empty()) << "empty corpus " << gCorpus;
	for (const std::string &name : names) {
		std::ifstream in(gCorpus + "/" + name, std::ios::binary);
		ASSERT_TRUE(in) << name;
		const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
					      std::istreambuf_iterator<char>());
		SCOPED_TRACE(name);
		EXPECT_EQ(LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t *>(bytes.data()),
						 bytes.size()),
			  0);
	}
	std::printf("replayed %zu inputs from %s\n", names.size(), gCorpus.c_str());
}

} // namespace

int main(int argc, char **argv)
{
	::testing::InitGoogleTest(&argc, argv);
	if (argc < 2) {
		std::fprintf(stderr, "usage: %s <corpus-dir> [gtest flags]\n", argv[0]);
		return 2;
	}
	gCorpus = argv[1];
	return RUN_ALL_TESTS();
}
