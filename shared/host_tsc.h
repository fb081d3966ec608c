// SPDX-License-Identifier: AGPL-3.0-or-later
#pragma once

// The host's TSC frequency. Under TCG the guest sees the host's TSC, and
// microvm hangs in about one boot of eight while the guest kernel
// calibrates it against the PIT; tsc_early_khz=<this> on the kernel command
// line avoids that. Measured by the unprivileged client, which passes it to
// the helper (--tsc-khz): the value only affects the caller's own VM.

#include <cstdint>
#include <optional>

namespace fr {

// In kHz: /sys/devices/system/cpu/cpu0/tsc_freq_khz where the kernel offers
// it, else measured against CLOCK_MONOTONIC_RAW for ~20 ms. nullopt on
// anything but x86-64 or when the measurement is implausible.
std::optional<std::uint64_t> measureHostTscKhz();

// measureHostTscKhz() once per process: every caller in it sees the same
// value (the frequency does not change; a second measurement would differ
// in its last digits).
std::optional<std::uint64_t> hostTscKhz();

} // namespace fr
