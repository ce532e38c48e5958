"""A tiny distribution used by envbuild's examples and tests."""

__version__ = "1.0.0"


def greet(name="world"):
    return "hello, %s" % name


def main():
    print(greet())
