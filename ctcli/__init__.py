"""ctcli: command-line CTC transcription of speech and text-line images.

This module stays light: no torch, cv2, librosa or kenlm import happens here,
so `ctcli --help` answers fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
