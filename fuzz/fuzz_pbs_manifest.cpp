// SPDX-License-Identifier: AGPL-3.0-or-later
// The PBS manifest (client/pbs/manifest.h): its JSON, and the blob around
// it when the input starts with a blob magic. The manifest names the
// archives whose names reach the guest path space and the helper: whatever
// parses has plain, distinct file names; checking it against a key never
// crashes.
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>
#include <string_view>

#include "client/pbs/manifest.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	using namespace fr::pbs;
	static const CryptConfig crypt = [] {
		Key key;
		key.fill(1);
		return *CryptConfig::create(key);
	}();
	fr::Result<Manifest> text =
		parseManifest(std::string_view(reinterpret_cast<const char *>(data), size));
	fr::Result<Manifest> blob = decodeManifest(ByteView(data, size));
	for (const fr::Result<Manifest> *m : {&text, &blob}) {
		if (!*m)
			continue;
		std::set<std::string> names;
		for (const ManifestFile &file : (*m)->files) {
			if (file.filename.empty() || file.filename.find('/') != std::string::npos ||
			    file.filename == "." || file.filename == ".." ||
			    file.filename.find('\0') != std::string::npos)
				std::abort();
			if (!names.insert(file.filename).second)
				std::abort();
		}
		(void)checkManifestKey(**m, nullptr);
		(void)checkManifestKey(**m, &crypt);
		if (!(*m)->json)
			std::abort(); // every parsed manifest keeps its JSON
		(void)canonicalJson(*(*m)->json);
	}
	return 0;
}
