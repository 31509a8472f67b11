"""The C guest transport and the real-VM tests (QEMU, a guest kernel, ivshmem-doorbell)."""
