// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// A callback that reports failure by returning a Status and cannot throw.
// Code built without exceptions (shared/, the protocol library) calls back
// into the client, which is built with them: an exception thrown through
// such frames cannot be caught, so the type admits only callables declared
// noexcept, and the compiler, not a comment, keeps them from throwing.
//
// Non-owning, like a function reference: it refers to the callable it was
// made from and must not outlive it. Take it as a parameter; do not store it.

#include <memory>
#include <type_traits>
#include <utility>

#include "shared/result.h"

namespace fr {

template <typename... Args>
class StatusCallback {
public:
	template <typename F>
		requires(!std::is_same_v<std::remove_cvref_t<F>, StatusCallback> &&
			 std::is_nothrow_invocable_r_v<Status, F &, Args...>)
	// cppcheck-suppress noExplicitConstructor ; implicit, like a function pointer
	StatusCallback(F &&callable) noexcept // NOLINT(bugprone-forwarding-reference-overload)
		: object_(const_cast<void *>(static_cast<const void *>(std::addressof(callable)))),
		  call_(&invoke<std::remove_reference_t<F>>)
	{
	}

	// Says why a callable that may throw is refused (instead of "cannot
	// convert").
	template <typename F>
		requires(!std::is_same_v<std::remove_cvref_t<F>, StatusCallback> &&
			 std::is_invocable_r_v<Status, F &, Args...> &&
			 !std::is_nothrow_invocable_r_v<Status, F &, Args...>)
	// cppcheck-suppress noExplicitConstructor ; never compiles: its message is the point
	StatusCallback(F &&) // NOLINT(bugprone-forwarding-reference-overload)
		: object_(nullptr), call_(nullptr)
	{
		static_assert(sizeof(F) == 0, "a StatusCallback must be noexcept: return errors as a Status");
	}

	Status operator()(Args... args) const noexcept { return call_(object_, std::forward<Args>(args)...); }

private:
	template <typename F>
	static Status invoke(void *object, Args... args) noexcept
	{
		return (*static_cast<F *>(object))(std::forward<Args>(args)...);
	}

	void *object_ = nullptr;
	Status (*call_)(void *, Args...) noexcept = nullptr;
};

} // namespace fr
