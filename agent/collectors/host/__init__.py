"""Host health: CPU, memory, disks, temperatures, clock sync, failed units, eMMC wear."""
