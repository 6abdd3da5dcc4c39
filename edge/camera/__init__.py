"""Cameras: one reader thread per camera (video files, RTSP/HTTP streams, image folders) with an explicit
state machine and back-off (`sources`), the readers behind it (`readers`) and frame timing at the reader:
the one-slot latest-frame mailbox, the fps cap and pacing (`pacing`)."""
