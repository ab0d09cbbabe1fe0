from setuptools import find_packages, setup

setup(
    name="ntm",
    version="0.1.0",
    description="Neural Turing Machines on PyTensor, with a Lasagne-compatible layer API",
    packages=find_packages(include=["ntm", "ntm.*"]),  # the examples' utils/ stays in the repository
    python_requires=">=3.11",
    install_requires=["pytensor>=3.0,<3.4", "numpy>=1.26", "scipy>=1.11", "matplotlib>=3.8"],
)
