"""Builds the native kernel ``sparsemix._C`` at install time (metadata lives in pyproject.toml).

torch must already be installed and importable: install with
``pip install --no-build-isolation -e .`` after torch, as torch-scatter does (the Makefile does this),
so the extension compiles against the torch it will run with. A failed compile fails the install.
"""
from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

# -O3 but not -march=native: the built library must run on any x86-64 / aarch64 it is copied to;
# `#pragma omp simd` lets the compiler vectorise the channel loops within the baseline ISA.
native = CppExtension(
    name="sparsemix._C",
    sources=["sparsemix/csrc/slot_mix.cpp"],
    depends=["sparsemix/csrc/slot_mix_kernels.h"],
    extra_compile_args=["-O3", "-fopenmp", "-Wno-psabi"],  # psabi: see slot_mix_kernels.h
    extra_link_args=["-fopenmp"],
)

setup(ext_modules=[native], cmdclass={"build_ext": BuildExtension})
