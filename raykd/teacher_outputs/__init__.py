"""The teacher's outputs for the student: computed once (cache), kept on disk with checksums
(disk_cache), and served to every trial's workers from one Ray actor (service)."""
