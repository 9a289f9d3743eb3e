"""Data: the CISSL protocol (counts, splits), sources by name, augmentation, and the step-indexed batches."""
