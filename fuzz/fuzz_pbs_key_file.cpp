// SPDX-License-Identifier: AGPL-3.0-or-later
// PBS key files (client/pbs/key_file.h). A key file is the user's, but it
// may come from anywhere (a colleague, a backup of a backup). Whatever
// parses has a 32-byte key (unprotected) or iv, tag and key (protected);
// decrypting never crashes. Key derivation runs only with cheap
// parameters: the bounds on expensive ones are unit-tested.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "client/pbs/key_file.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t *data, std::size_t size)
{
	using namespace fr::pbs;
	fr::Result<KeyFile> file =
		parseKeyFile(std::string_view(reinterpret_cast<const char *>(data), size));
	if (!file)
		return 0;
	if (file->data.size() != (file->needsPassword() ? 64u : 32u))
		std::abort();
	const bool cheap = file->kdf == Kdf::None ||
			   (file->kdf == Kdf::Pbkdf2 && file->pbkdf2Iterations <= 1000) ||
			   (file->kdf == Kdf::Scrypt && file->scryptN <= 1024 && file->scryptR <= 8 &&
			    file->scryptP <= 2);
	if (cheap)
		(void)decryptKeyFile(*file, "password");
	return 0;
}
