"""Loaded by Python at start-up when this folder is on PYTHONPATH: the tests put it there for
every kb subprocess, so a real CLI run that tried to reach the network fails loudly."""

from tests_netguard_impl import install

install()
