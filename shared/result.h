// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace fr {

// What kind of failure an Error is, for callers that react to where it came
// from rather than to its errno (so that nobody compares call() strings).
enum class ErrorKind : std::uint8_t {
	Local,        // a call or check of ours failed (the default)
	Guest,        // the guest answered with its error trailer (shared/guest_session.h)
	Helper,       // file-restore-helper refused or failed (its exit status, client/)
	OutputClosed, // whoever reads our output went away (EPIPE on stdout, client/)
	Usage,        // asked for what cannot be done as asked: a usage error (exit 2)
};

// What went wrong: the failing call or check, the object it was applied to,
// and either an errno value or a fixed text. Holds no heap memory, so it can
// be built, copied and formatted between fork() and exec() and in the helper,
// which is compiled without exceptions.
//
// Formats as "call(object): reason", e.g. "open(/dev/vhost-vsock): No such
// file or directory" or "--memory(99999): must be a decimal integer from 64
// to 16384".
class Error {
public:
	static constexpr std::size_t kObjectMax = 255;
	static constexpr std::size_t kDetailMax = 191;

	// errnum: the errno value; call: static text naming the call or check;
	// object: what it was applied to (copied, truncated to kObjectMax bytes).
	Error(int errnum, const char *call, std::string_view object = {}) noexcept;

	// A failed check rather than a failed call: `detail` is printf-formatted
	// into the error (truncated to kDetailMax bytes) and used as the reason.
	static Error invalid(int errnum, const char *what, std::string_view object,
			     const char *fmt, ...) noexcept
		__attribute__((format(printf, 4, 5)));

	// The same error, of another kind.
	Error withKind(ErrorKind kind) const noexcept
	{
		Error copy = *this;
		copy.kind_ = kind;
		return copy;
	}

	int errnum() const noexcept { return errnum_; }
	ErrorKind kind() const noexcept { return kind_; }
	const char *call() const noexcept { return call_; }
	const char *object() const noexcept { return object_; }
	// The fixed text if there is one, else the errno's description
	// (strerrordesc_np: no locale, no allocation).
	const char *reason() const noexcept;

	// Writes "call(object): reason" into buf (always NUL-terminated when
	// size > 0, truncated if needed). Returns the untruncated length.
	std::size_t format(char *buf, std::size_t size) const noexcept;
	// The same as a std::string (allocates; not for the helper's child).
	std::string message() const;

private:
	int errnum_;
	ErrorKind kind_ = ErrorKind::Local;
	const char *call_;
	char object_[kObjectMax + 1];
	char detail_[kDetailMax + 1];
};

// Either a T or an Error, shaped like std::expected (C++23's is not usable
// with g++ 12 in C++20 mode). Accessing the wrong alternative is a bug and
// aborts.
template <typename T>
class [[nodiscard]] Result {
public:
	// cppcheck-suppress noExplicitConstructor ; implicit like std::expected
	Result(const T &value) : ok_(true) { new (&value_) T(value); }
	// cppcheck-suppress noExplicitConstructor ; implicit like std::expected
	Result(T &&value) : ok_(true) { new (&value_) T(std::move(value)); }
	// cppcheck-suppress noExplicitConstructor ; implicit like std::expected
	Result(const Error &error) : ok_(false) { new (&error_) Error(error); }

	Result(const Result &other) : ok_(other.ok_)
	{
		if (ok_)
			new (&value_) T(other.value_);
		else
			new (&error_) Error(other.error_);
	}
	Result(Result &&other) noexcept(std::is_nothrow_move_constructible_v<T>) : ok_(other.ok_)
	{
		if (ok_)
			new (&value_) T(std::move(other.value_));
		else
			new (&error_) Error(other.error_);
	}
	Result &operator=(Result other) noexcept(std::is_nothrow_move_constructible_v<T>)
	{
		if (this != &other) {
			destroy();
			ok_ = other.ok_;
			if (ok_)
				new (&value_) T(std::move(other.value_));
			else
				new (&error_) Error(other.error_);
		}
		return *this;
	}
	~Result() { destroy(); }

	bool hasValue() const noexcept { return ok_; }
	explicit operator bool() const noexcept { return ok_; }

	T &value() & { check(ok_); return value_; }
	const T &value() const & { check(ok_); return value_; }
	T &&value() && { check(ok_); return std::move(value_); }
	T &operator*() & { return value(); }
	const T &operator*() const & { return value(); }
	T *operator->() { return &value(); }
	const T *operator->() const { return &value(); }

	const Error &error() const { check(!ok_); return error_; }

private:
	static void check(bool ok) noexcept
	{
		if (!ok)
			__builtin_trap();
	}
	void destroy() noexcept
	{
		if (ok_)
			value_.~T();
		else
			error_.~Error();
	}

	bool ok_;
	union {
		T value_;
		Error error_;
	};
};

// Success with no value, or an Error.
template <>
class [[nodiscard]] Result<void> {
public:
	Result() noexcept : ok_(true), error_(0, "") {}
	// cppcheck-suppress noExplicitConstructor ; implicit like std::expected
	Result(const Error &error) noexcept : ok_(false), error_(error) {}

	bool hasValue() const noexcept { return ok_; }
	explicit operator bool() const noexcept { return ok_; }
	const Error &error() const
	{
		if (ok_)
			__builtin_trap();
		return error_;
	}

private:
	bool ok_;
	Error error_;
};

using Status = Result<void>;

} // namespace fr
