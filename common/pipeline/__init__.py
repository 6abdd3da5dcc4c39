"""The face pipeline both edge and central run: detect, align, embed, score quality."""
