#!/bin/busybox sh
# /init of the builder VM that tests/guest/volume-disks.sh boots: makes the
# volume layouts on the disks it is given (found by serial), prints
# BUILD-OK, powers off. Contents are fixed strings the VM tests compare
# with (tests/guest/vm_volumes_test.cpp); `seq 1 20000` makes the larger
# file ("numbers") that is compared byte for byte.
/bin/busybox mkdir -p /proc /sys /dev /run /tmp /mnt /etc/lvm /usr/bin /sbin
/bin/busybox --install -s /bin
export PATH=/tools/bin:/bin LD_LIBRARY_PATH=/tools/lib DM_DISABLE_UDEV=1 LVM_SYSTEM_DIR=/etc/lvm
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /run
mount -t tmpfs tmp /tmp

fail() {
	echo "BUILD-FAIL: $*"
	dmesg | tail -n 20
	poweroff -f
	sleep 100
}
run() { "$@" || fail "$*"; }
# lvm just after a partition-table re-read sometimes finds "no device":
# tried again a few times.
retry() {
	for i in 1 2 3 4 5 6; do
		"$@" && return 0
		sleep 1
	done
	"$@" -vvvv 2>&1 | grep -E "vda|filter" | grep -v "not found in config" | head -40
	cat /proc/partitions
	fail "$*"
}
loadgroup() {
	while read -r g f; do
		[ "$g" = "$1" ] && insmod "/lib/modules/$f" 2>/dev/null
	done </lib/modules/order
	return 0
}
for g in base ext4 xfs btrfs vfat exfat udf tools cow lvm md luks fuse; do loadgroup $g; done
dev() {
	for d in /sys/block/vd*; do
		if [ "$(cat "$d/serial")" = "$1" ]; then
			echo "/dev/${d##*/}"
			return
		fi
	done
	fail "no disk $1"
}
# busybox prefers its own applets to PATH: e2fsprogs' mke2fs by its path.
# sgdisk's chatter goes nowhere.
sgdisk() { /tools/bin/sgdisk "$@" >/dev/null; }
# Partition N of a disk device.
part() { echo "$1$2"; }
# Waits until the kernel (and devtmpfs) show partition 1 of disk $1.
rescan() {
	blockdev --rereadpt "$1" || fail "rereadpt $1"
	n=0
	while [ ! -b "${1}1" ] || [ ! -e "/sys/block/${1#/dev/}/${1#/dev/}1" ]; do
		n=$((n + 1))
		[ $n -gt 100 ] && fail "no partitions appeared on $1"
		sleep 0.05
	done
	# lvm right after a re-read found "no device" now and then: settle.
	sleep 1
}

cat >/etc/lvm/lvm.conf <<'EOF'
devices {
	obtain_device_list_from_udev = 0
	use_devicesfile = 0
	hints = "none"
	filter = [ "a|^/dev/vd|", "a|^/dev/dm-|", "a|^/dev/md|", "a|^/dev/mapper/|", "r|.*|" ]
}
activation { udev_sync = 0 udev_rules = 0 monitoring = 0 }
global { thin_check_executable = "" thin_repair_executable = "" }
backup { backup = 0 archive = 0 }
EOF
printf 'test-passphrase' >/tmp/key

# A small tree: etc/hostname = "<tag>-host", data/numbers = seq 1 20000.
tree() {
	rm -rf /tmp/tree
	mkdir -p /tmp/tree/etc /tmp/tree/data
	echo "$1-host" >/tmp/tree/etc/hostname
	seq 1 20000 >/tmp/tree/data/numbers
}
mkext4() { tree "$2"; run /tools/bin/mke2fs -q -F -t ext4 -d /tmp/tree "$1"; }

# --- partition tables (GPT) -------------------------------------------------
run sgdisk -n 1:2048:0 -t 1:8e00 "$(dev lvm)"
for s in md-a md-b md-c; do
	run sgdisk -n 1:2048:+8M -t 1:fd00 -n 2:0:0 -t 2:fd00 "$(dev $s)"
done
run sgdisk -n 1:2048:+12M -n 2:0:+12M -n 3:0:+16M -n 4:0:0 "$(dev luks)"
run sgdisk -n 1:2048:0 -t 1:0700 "$(dev ntfs)"
run sgdisk -n 1:2048:0 "$(dev btrfs)"
for s in lvm md-a md-b md-c luks ntfs btrfs; do rescan "$(dev $s)"; done

# --- LVM: two LVs and a thin LV (+ a thin snapshot) on partition 1 -------
d=$(dev lvm)
retry lvm pvcreate -q "$(part "$d" 1)"
run lvm vgcreate -q -s 1M vgtest "$(part "$d" 1)"
run lvm lvcreate -q -L 8M -n root vgtest
run lvm lvcreate -q -L 4M -n data vgtest
run lvm lvcreate -q -L 8M -T vgtest/pool
run lvm lvcreate -q -V 16M -T vgtest/pool -n thin
mkext4 /dev/mapper/vgtest-root lvm-root
mkext4 /dev/mapper/vgtest-data lvm-data
mkext4 /dev/mapper/vgtest-thin lvm-thin
run lvm lvcreate -q -s vgtest/thin -n thinsnap
run lvm vgchange -q -an vgtest

# --- a VG on two whole disks ---------------------------------------------
a=$(dev span-a)
b=$(dev span-b)
run lvm pvcreate -q "$a" "$b"
run lvm vgcreate -q -s 1M vgspan "$a" "$b"
run lvm lvcreate -q -l 100%FREE -n wide vgspan
mkext4 /dev/mapper/vgspan-wide lvm-span
run lvm vgchange -q -an vgspan

# --- md: raid1 over md-a1 md-b1, raid5 over md-a2 md-b2 md-c2 --------------
a=$(dev md-a) b=$(dev md-b) c=$(dev md-c)
run mdadm --create /dev/md/r1 --homehost=builder --name=r1 --metadata=1.2 --level=1 --raid-devices=2 \
	--run --assume-clean "$(part "$a" 1)" "$(part "$b" 1)"
run mdadm --create /dev/md/r5 --homehost=builder --name=r5 --metadata=1.2 --level=5 --raid-devices=3 \
	--chunk=64 --run "$(part "$a" 2)" "$(part "$b" 2)" "$(part "$c" 2)"
mdadm --wait /dev/md/r5
mkext4 /dev/md/r1 md-r1
mkext4 /dev/md/r5 md-r5
sync
run mdadm --stop /dev/md/r1
run mdadm --stop /dev/md/r5

# --- LUKS2, LUKS1, LVM on LUKS, LUKS on LVM ---------------------------------
d=$(dev luks)
luks2() {
	run cryptsetup luksFormat -q --type luks2 --pbkdf argon2id --pbkdf-memory 32768 --pbkdf-parallel 1 \
		--pbkdf-force-iterations 4 --luks2-metadata-size 16k --luks2-keyslots-size 512k \
		--key-file /tmp/key "$1"
}
luks1() {
	run cryptsetup luksFormat -q --type luks1 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file /tmp/key "$1"
}
luks2 "$(part "$d" 1)"
run cryptsetup open --key-file /tmp/key "$(part "$d" 1)" c1
mkext4 /dev/mapper/c1 luks2
run cryptsetup close c1
luks1 "$(part "$d" 2)"
run cryptsetup open --key-file /tmp/key "$(part "$d" 2)" c2
mkext4 /dev/mapper/c2 luks1
run cryptsetup close c2
luks2 "$(part "$d" 3)"
run cryptsetup open --key-file /tmp/key "$(part "$d" 3)" c3
run lvm pvcreate -q /dev/mapper/c3
run lvm vgcreate -q -s 1M vgcrypt /dev/mapper/c3
run lvm lvcreate -q -L 8M -n secret vgcrypt
mkext4 /dev/mapper/vgcrypt-secret lvm-on-luks
run lvm vgchange -q -an vgcrypt
run cryptsetup close c3
retry lvm pvcreate -q "$(part "$d" 4)"
run lvm vgcreate -q -s 1M vgluks "$(part "$d" 4)"
run lvm lvcreate -q -L 12M -n cryptlv vgluks
luks2 /dev/mapper/vgluks-cryptlv
run cryptsetup open --key-file /tmp/key /dev/mapper/vgluks-cryptlv c4
mkext4 /dev/mapper/c4 luks-on-lvm
run cryptsetup close c4
run lvm vgchange -q -an vgluks

# --- NTFS: non-ASCII names, an alternate data stream ----------------------
d=$(dev ntfs)
run mkntfs -q -Q -F -L win "$(part "$d" 1)"
run ntfs-3g -o streams_interface=windows "$(part "$d" 1)" /mnt
mkdir -p "/mnt/Dokumente"
echo "ntfs-host" >"/mnt/hostname.txt"
echo "Grüße aus NTFS" >"/mnt/Dokumente/Grüße.txt"
echo "japanese" >"/mnt/日本語.txt"
seq 1 20000 >/mnt/Dokumente/numbers
echo "the main stream" >/mnt/ads.txt
echo "hidden stream" >/mnt/ads.txt:secret
run umount /mnt
while pidof ntfs-3g >/dev/null; do sleep 0.1; done

# --- btrfs: subvolumes @ (the default), @home, a snapshot of @ ------------
d=$(dev btrfs)
run mkfs.btrfs -q -f "$(part "$d" 1)"
run mount -t btrfs "$(part "$d" 1)" /mnt
run btrfs -q subvolume create /mnt/@
run btrfs -q subvolume create /mnt/@home
mkdir -p /mnt/@/etc /mnt/@home/user /mnt/snapshots
echo "btrfs-old" >/mnt/@/etc/hostname
echo "top level" >/mnt/top.txt
echo "user file" >/mnt/@home/user/notes.txt
run btrfs -q subvolume snapshot -r /mnt/@ /mnt/snapshots/before
echo "btrfs-host" >/mnt/@/etc/hostname
seq 1 20000 >/mnt/@/numbers
id=$(btrfs subvolume list /mnt | awk '$NF == "@" { print $2 }')
run btrfs -q subvolume set-default "$id" /mnt
run umount /mnt

# --- exfat and udf, end to end --------------------------------------------
if command -v mkfs.exfat >/dev/null; then
	d=$(dev exfat)
	run mkfs.exfat -L EXFAT "$d" >/dev/null
	run mount -t exfat "$d" /mnt
	echo "exfat-host" >/mnt/hostname.txt
	seq 1 20000 >/mnt/numbers
	run umount /mnt
fi
if command -v mkudffs >/dev/null; then
	d=$(dev udf)
	run mkudffs --label=UDF "$d" >/dev/null
	run mount -t udf "$d" /mnt
	echo "udf-host" >/mnt/hostname.txt
	seq 1 20000 >/mnt/numbers
	run umount /mnt
fi

# --- hostile metadata (patched afterwards on the host) --------------------
d=$(dev lvm-bad)
run lvm pvcreate -q "$d"
run lvm vgcreate -q -s 1M vgbad "$d"
run lvm lvcreate -q -L 2M -n lv vgbad
run lvm vgchange -q -an vgbad
d=$(dev md-1000)
run mdadm --create /dev/md/m1000 --homehost=builder --name=m1000 --metadata=1.2 --level=1 --raid-devices=2 \
	--run --assume-clean "$d" missing
run mdadm --stop /dev/md/m1000
luks1 "$(dev luks-kdf)"
run mkntfs -q -Q -F -L bad "$(dev ntfs-bad)"

# --- crash-consistent filesystems: the newest changes only in the log -----
# version.txt is rewritten and newest.txt created after the last clean
# point; shutdown -f flushes the log (so the change is committed there) and
# stops the filesystem before anything is written in place.
crash_base() {
	mkdir -p /mnt/data
	echo "old" >/mnt/data/version.txt
	seq 1 20000 >/mnt/data/numbers
}
crash_newest() {
	echo "new" >/mnt/data/version.txt
	echo "written last" >/mnt/data/newest.txt
	run xfs_io -c fsync /mnt/data/version.txt
	run xfs_io -c fsync /mnt/data/newest.txt
}
d=$(dev ext4-dirty)
run /tools/bin/mke2fs -q -F -t ext4 -J size=4 "$d"
run mount -t ext4 -o commit=600 "$d" /mnt
crash_base
sync
crash_newest
run xfs_io -x -c "shutdown -f" /mnt
run umount /mnt
d=$(dev xfs-dirty)
run mkfs.xfs -q -f "$d"
run mount -t xfs "$d" /mnt
crash_base
sync
crash_newest
run xfs_io -x -c "shutdown -f" /mnt
run umount /mnt
# btrfs has no shutdown ioctl here: fsync writes the log tree, and the VM
# powers off at once, without a sync (commit=600: no transaction commit in
# between).
d=$(dev btrfs-log)
run mkfs.btrfs -q -f "$d"
run mount -t btrfs -o commit=600 "$d" /mnt
crash_base
sync
crash_newest
echo BUILD-OK
poweroff -f -n
sleep 100
