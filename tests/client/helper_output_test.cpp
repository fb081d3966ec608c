// SPDX-License-Identifier: AGPL-3.0-or-later
// The helper's {"pid":N,"cid":M} line, parsed strictly.
#include "client/helper_output.h"

#include <gtest/gtest.h>

namespace fr::client {
namespace {

TEST(HelperOutput, AcceptsExactlyTheInterface)
{
	Result<HelperOutput> serial = parseHelperOutput("{\"pid\":1234,\"cid\":null}\n", Transport::Serial);
	ASSERT_TRUE(serial) << serial.error().message();
	EXPECT_EQ(serial->pid, 1234);
	EXPECT_FALSE(serial->cid);

	Result<HelperOutput> vsock = parseHelperOutput("{\"cid\":4242,\"pid\":99}\n", Transport::Vsock);
	ASSERT_TRUE(vsock);
	EXPECT_EQ(vsock->pid, 99);
	EXPECT_EQ(*vsock->cid, 4242U);
	EXPECT_TRUE(parseHelperOutput("{ \"pid\" : 7 , \"cid\" : null }\n", Transport::Serial));
}

TEST(HelperOutput, RefusesEverythingElse)
{
	const char *bad[] = {
		"",
		"{\"pid\":1234,\"cid\":null}",                 // no newline
		"{\"pid\":1234,\"cid\":null}\n\n",             // two lines
		"{\"pid\":1234,\"cid\":null}\nextra",
		"{\"pid\":1,\"cid\":null}\n",                  // init
		"{\"pid\":0,\"cid\":null}\n",
		"{\"pid\":-5,\"cid\":null}\n",
		"{\"pid\":4194305,\"cid\":null}\n",
		"{\"pid\":18446744073709551615,\"cid\":null}\n",
		"{\"pid\":12.0,\"cid\":null}\n",
		"{\"pid\":\"12\",\"cid\":null}\n",
		"{\"pid\":true,\"cid\":null}\n",
		"{\"pid\":12}\n",
		"{\"pid\":12,\"cid\":null,\"x\":1}\n",
		"{\"pid\":12,\"pid\":13,\"cid\":null}\n",      // duplicate key
		"{\"pid\":12,\"cid\":5}\n",                     // a CID for serial
		"[12,null]\n",
		"{\"pid\":12,\"cid\":null\n",
		"pid=12\n",
	};
	for (const char *text : bad) {
		Result<HelperOutput> parsed = parseHelperOutput(text, Transport::Serial);
		EXPECT_FALSE(parsed) << text;
		if (!parsed) {
			EXPECT_EQ(parsed.error().errnum(), EPROTO);
		}
	}
	const char *badVsock[] = {
		"{\"pid\":12,\"cid\":null}\n", "{\"pid\":12,\"cid\":2}\n", "{\"pid\":12,\"cid\":9}\n",
		"{\"pid\":12,\"cid\":4294967295}\n", "{\"pid\":12,\"cid\":-1}\n",
	};
	for (const char *text : badVsock)
		EXPECT_FALSE(parseHelperOutput(text, Transport::Vsock)) << text;
	EXPECT_FALSE(parseHelperOutput(std::string(300, ' ') + "{\"pid\":12,\"cid\":null}\n",
				       Transport::Serial));
}

} // namespace
} // namespace fr::client
