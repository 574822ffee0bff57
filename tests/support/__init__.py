"""Helpers the tests share: real servers, devices, documents and models made for tests."""
