#!/bin/sh
# Example: boot a guest with a vgpu-mediator device. The mediator must be running and configured
# with a VM named "vm1" (its socket is <socket_dir>/vm1.sock, /run/vgpu-mediator by default).
# Run it as that VM's `owner` from the mediator's configuration (e.g. `sudo -u vgpu-qemu-vm1`): the
# socket is that user's alone, and the mediator refuses any other connecting uid.
#
#   KERNEL=/boot/vmlinuz-... INITRD=/boot/initrd.img-... DISK=guest.qcow2 ./run-vm.sh
#
# The three lines that matter are the -chardev and the -device: stock QEMU (7.2 and later),
# no patch. vectors=16: one doorbell vector per channel (the VM config's `vectors`, 16 by default; docs/protocol.md §1.9).
set -eu
SOCKET=${SOCKET:-/run/vgpu-mediator/vm1.sock}
ACCEL=${ACCEL:-kvm}

exec qemu-system-x86_64 \
    -machine q35,accel="$ACCEL" -m "${MEM:-4096}" -smp "${CPUS:-4}" \
    -nographic -no-reboot \
    ${KERNEL:+-kernel "$KERNEL"} ${INITRD:+-initrd "$INITRD"} \
    ${KERNEL:+-append "console=ttyS0 ${APPEND:-root=/dev/vda1}"} \
    ${DISK:+-drive file="$DISK",if=virtio} \
    -chardev socket,path="$SOCKET",id=vgpu0 \
    -device ivshmem-doorbell,chardev=vgpu0,vectors=16
