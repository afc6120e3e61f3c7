module rocmforge.dev/rocmforge

go 1.19
