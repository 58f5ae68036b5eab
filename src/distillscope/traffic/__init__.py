"""Traffic forensics: simulate, score and stop distillation traffic (filled in below)."""
