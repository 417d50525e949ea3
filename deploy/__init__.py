"""Building Raspberry Pi OS SD images with the gate installed, and flashing them onto cards."""
