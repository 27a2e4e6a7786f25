"""C kernel sources shipped as package data; one folder per kernel set (see toolkit.codegen.kernel_sets)."""
