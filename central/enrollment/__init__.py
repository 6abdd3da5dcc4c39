"""Enrollment: photos through the face pipeline and the quality gate; bulk jobs from a zip of folders."""
