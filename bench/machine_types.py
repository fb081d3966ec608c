#!/usr/bin/env python3
# SPDX-License-Identifier: AGPL-3.0-or-later
"""Compares QEMU machine types for file-restore's VM under TCG.

Boots a Debian kernel (the uncompressed PVH vmlinux, as the guest image
builder produces it) with a minimal busybox initramfs that loads the virtio
modules, says "hello" on the virtio-serial port named org.file-restore.0 and
powers off. QEMU gets the same devices and options the helper gives it
(helper/qemu_command.cpp), only the machine type and the virtio transport
(-device vs -pci) differ. Measures, per boot: time until the host reads
"hello" from the serial socket (the channel is usable) and until QEMU exits.
Runs the variants round-robin so that a noisy machine affects all alike.

  bench/machine_types.py --deb linux-image-6.1.0-*-amd64_*.deb --busybox busybox-static_*.deb \
      [--rounds 10] [--work bench/work/machines] [--accel tcg|kvm] [--variants microvm,q35]
(both .debs: `apt-get download linux-image-6.1.0-NN-amd64 busybox-static`; once
--work holds vmlinux and initramfs.img they are not needed again)
"""
import argparse
import glob
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

VARIANTS = {
    "microvm": ("microvm", "device"),
    "microvm-lean": ("microvm,x-option-roms=off,pit=off,pic=off,rtc=off", "device"),
    "q35": ("q35", "pci"),
}
MODULES = ["virtio_ring", "virtio", "virtio_mmio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
           "virtio_pci", "virtio_console", "virtio_blk"]
INIT = """#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in %s; do [ -e /m/$m.ko ] && insmod /m/$m.ko; done
for i in 1 2 3 4 5 6 7 8 9 10; do
  for v in /sys/class/virtio-ports/*; do
    [ "$(cat $v/name 2>/dev/null)" = org.file-restore.0 ] && echo hello > /dev/$(basename $v) && poweroff -f
  done
  sleep 0.1
done
echo "no serial port"; poweroff -f
""" % " ".join(MODULES)


def build_image(deb, busybox, work):
    os.makedirs(work, exist_ok=True)
    vmlinux = os.path.join(work, "vmlinux")
    initrd = os.path.join(work, "initramfs.img")
    if os.path.exists(vmlinux) and os.path.exists(initrd):
        return vmlinux, initrd
    if not deb or not busybox:
        sys.exit("--deb and --busybox are needed to build the image in " + work)
    tree = os.path.join(work, "deb")
    shutil.rmtree(tree, ignore_errors=True)
    subprocess.run(["dpkg-deb", "-x", deb, tree], check=True)
    subprocess.run(["dpkg-deb", "-x", busybox, tree], check=True)
    bz = glob.glob(os.path.join(tree, "boot", "vmlinuz-*"))[0]
    data = open(bz, "rb").read()
    start = data.find(b"\xfd7zXZ\x00")
    with open(vmlinux, "wb") as out:
        subprocess.run(["xz", "-dc"], input=data[start:], stdout=out, stderr=subprocess.DEVNULL)
    root = os.path.join(work, "root")
    shutil.rmtree(root, ignore_errors=True)
    for d in ["bin", "m", "proc", "sys", "dev"]:
        os.makedirs(os.path.join(root, d))
    shutil.copy(os.path.join(tree, "bin", "busybox"), os.path.join(root, "bin"))
    for m in MODULES:
        found = glob.glob(os.path.join(tree, "lib", "modules", "*", "kernel", "**", m + ".ko"), recursive=True)
        if found:
            shutil.copy(found[0], os.path.join(root, "m"))
    with open(os.path.join(root, "init"), "w") as f:
        f.write(INIT)
    os.chmod(os.path.join(root, "init"), 0o755)
    cpio = subprocess.run("cd %s && find . | cpio -o -H newc --quiet | zstd -q -19" % root,
                          shell=True, check=True, stdout=subprocess.PIPE).stdout
    open(initrd, "wb").write(cpio)
    return vmlinux, initrd


def tsc_khz():
    # Same idea as the helper's hostTscKhz(), coarser: /proc/cpuinfo's
    # "cpu MHz" is close enough for a benchmark on a constant-TSC machine.
    for line in open("/proc/cpuinfo"):
        if line.startswith("cpu MHz"):
            return int(float(line.split(":")[1]) * 1000)
    return None


def boot(variant, vmlinux, initrd, disk, work, accel):
    machine, bus = VARIANTS[variant]
    path = os.path.join(work, "s.sock")
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    img = os.open(disk, os.O_RDONLY)
    kfd = os.open(vmlinux, os.O_RDONLY)
    ifd = os.open(initrd, os.O_RDONLY)
    fds = (listener.fileno(), img, kfd, ifd)
    for fd in fds:
        os.set_inheritable(fd, True)
    khz = tsc_khz() if accel == "tcg" else None
    cmdline = "console=ttyS0 quiet panic=-1 8250.nr_uarts=1 tsc=reliable no_timer_check"
    if khz:
        cmdline += " tsc_early_khz=%d" % khz
    cmdline += " fr.idle=600 fr.transport=serial"
    argv = ["qemu-system-x86_64", "-name", "guest=file-restore:bench", "-machine", machine,
            "-accel", accel] + (["-cpu", "host"] if accel == "kvm" else []) + ["-m", "256", "-smp", "1", "-nodefaults", "-no-user-config", "-nic", "none",
            "-display", "none", "-monitor", "none", "-no-reboot",
            "-sandbox", "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny",
            "-serial", "stdio", "-kernel", "/proc/self/fd/%d" % kfd, "-initrd", "/proc/self/fd/%d" % ifd,
            "-append", cmdline, "-add-fd", "fd=%d,set=0" % img,
            "-blockdev", '{"driver":"raw","node-name":"frdisk0","read-only":true,"file":'
                         '{"driver":"file","filename":"/dev/fdset/0","read-only":true}}',
            "-device", "virtio-blk-%s,drive=frdisk0,serial=frdisk0,scsi=off" % bus,
            "-chardev", "socket,id=frchannel,fd=%d,server=on,wait=off" % listener.fileno(),
            "-device", "virtio-serial-%s" % bus,
            "-device", "virtserialport,chardev=frchannel,name=org.file-restore.0"]
    log = open(os.path.join(work, "console-%s.log" % variant), "w")
    start = time.monotonic()
    qemu = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, pass_fds=fds)
    for fd in (img, kfd, ifd):
        os.close(fd)
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.connect(path)
    client.settimeout(60)
    hello = None
    try:
        if client.recv(16).startswith(b"hello"):
            hello = time.monotonic() - start
    except socket.timeout:
        pass
    try:
        qemu.wait(timeout=60)
    except subprocess.TimeoutExpired:
        qemu.kill()
        qemu.wait()
    total = time.monotonic() - start
    client.close()
    listener.close()
    return hello, total


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deb")
    parser.add_argument("--busybox")
    parser.add_argument("--accel", default="tcg", choices=["tcg", "kvm"])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--work", default="bench/work/machines")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    args = parser.parse_args()
    vmlinux, initrd = build_image(args.deb, args.busybox, args.work)
    disk = os.path.join(args.work, "disk.raw")
    with open(disk, "wb") as f:
        f.truncate(64 << 20)
    variants = args.variants.split(",")
    results = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            results[v].append(boot(v, vmlinux, initrd, disk, args.work, args.accel))
            hello, total = results[v][-1]
            print("round %d %-13s hello %s exit %.2f s" % (r, v, "%.2f s" % hello if hello else "NONE", total),
                  flush=True)
    print("\n%s, %d rounds" % (args.accel, args.rounds))
    print("| machine | boots | channel up: median (min–max) | QEMU exit: median | failed |")
    print("|---|---|---|---|---|")
    for v in variants:
        ok = [h for h, _ in results[v] if h]
        exits = [t for h, t in results[v] if h]
        failed = len(results[v]) - len(ok)
        if ok:
            print("| %s | %d | %.2f s (%.2f–%.2f) | %.2f s | %d |" % (
                VARIANTS[v][0], len(results[v]), statistics.median(ok), min(ok), max(ok),
                statistics.median(exits), failed))
        else:
            print("| %s | %d | – | – | %d |" % (VARIANTS[v][0], len(results[v]), failed))


if __name__ == "__main__":
    sys.exit(main())
