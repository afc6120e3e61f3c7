module github.com/rocmforge/rocmforge/c_examples/go

go 1.19
