// Checks every value decoder of store/meta_codec.h must pass, over a list of encoded samples:
// each sample decodes; every truncation, trailing bytes and an unknown encoding version are
// rejected with EUCLEAN and a message naming the record kind. Shared by the format-2 and
// format-3 codec tests.
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "store/status.h"

namespace rankfs {

// One encoded value and a decoder that reports only success and the error.
struct CodecSample {
  std::string kind;  // the record kind the decoder names in its errors
  std::string encoded;
  std::function<Status(std::string_view)> decode;
};

template <typename T>
std::function<Status(std::string_view)> StatusOf(Result<T> (*decode)(std::string_view)) {
  return [decode](std::string_view v) { return decode(v).status(); };
}

// EUCLEAN, naming `kind` and containing `what`.
inline void ExpectMalformed(const Status& st, std::string_view kind, std::string_view what) {
  EXPECT_EQ(st.code(), EUCLEAN) << st.ToString();
  EXPECT_NE(st.message().find(kind), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find(what), std::string::npos) << st.ToString();
}

inline void ExpectEveryTruncationRejected(const std::vector<CodecSample>& samples) {
  for (const CodecSample& s : samples) {
    ASSERT_TRUE(s.decode(s.encoded).ok()) << s.kind;
    for (size_t len = 0; len < s.encoded.size(); ++len) {
      Status st = s.decode(s.encoded.substr(0, len));
      ASSERT_FALSE(st.ok()) << s.kind << " truncated to " << len;
      ExpectMalformed(st, s.kind, "");
    }
  }
}

inline void ExpectTrailingBytesRejected(const std::vector<CodecSample>& samples) {
  for (const CodecSample& s : samples) {
    for (std::string tail : {std::string(1, '\0'), std::string("garbage")}) {
      Status st = s.decode(s.encoded + tail);
      ASSERT_FALSE(st.ok()) << s.kind;
      ExpectMalformed(st, s.kind, "trailing");
    }
  }
}

// Versions 0, 4 and 255 are unknown to every kind (some know 1-3).
inline void ExpectUnknownVersionsRejected(const std::vector<CodecSample>& samples) {
  for (const CodecSample& s : samples) {
    for (uint8_t v : {0, 4, 255}) {
      std::string bad = s.encoded;
      bad[0] = char(v);
      Status st = s.decode(bad);
      ASSERT_FALSE(st.ok()) << s.kind << " version " << int(v);
      ExpectMalformed(st, s.kind, "");
    }
  }
}

}  // namespace rankfs
