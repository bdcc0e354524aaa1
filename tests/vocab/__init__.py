"""Tests of opencohort.vocab."""
