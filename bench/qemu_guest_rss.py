"""Resident memory of the guest program inside a running qemu-user process.

qemu-aarch64 on an x86-64 host maps the guest (its binary, libraries, heap, stacks and
anonymous mappings) at guest addresses from 0x5500000000 up; qemu's own binary, libraries,
heap and translation cache lie elsewhere. Summing the resident pages of the guest's range
leaves qemu out. The guest's file-backed pages are those qemu read to translate code: an
upper bound for what the same binary keeps resident on a Pi.

Usage: python3 bench/qemu_guest_rss.py PID   -> "guest_kb anonymous_kb qemu_total_kb"
"""
import re
import sys

GUEST_LO, GUEST_HI = 0x55_0000_0000, 0x56_0000_0000


def main(pid: str) -> None:
    guest = anon = total = 0
    inside = False
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            m = re.match(r"^([0-9a-f]+)-[0-9a-f]+ ", line)
            if m:
                inside = GUEST_LO <= int(m.group(1), 16) < GUEST_HI
            elif line.startswith("Rss:"):
                kb = int(line.split()[1])
                total += kb
                guest += kb if inside else 0
            elif line.startswith("Anonymous:") and inside:
                anon += int(line.split()[1])
    print(guest, anon, total)


if __name__ == "__main__":
    main(sys.argv[1])
