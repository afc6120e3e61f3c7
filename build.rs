//! Build steps that Cargo cannot express in the manifest: the shared library's soname, and
//! the GPU kernels compiled and embedded into the library.
//!
//! Kernels: every `kernels/*.hip` becomes one module per vendor. `hipcc --genco` makes an
//! offload bundle with a code object for each AMD target, `nvcc -fatbin` a fatbin with
//! machine code for each NVIDIA target plus PTX for newer GPUs. `$OUT_DIR/embedded_kernels.rs`
//! lists them for `src/backend/gpu/kernels.rs`. A vendor whose compiler is not found is
//! skipped with the reason recorded (and reported at run time); a kernel that fails to
//! compile fails the build.
//!
//! Environment (all optional):
//!   ROCMFORGE_HIPCC / ROCMFORGE_NVCC   the compiler to use, or `none` to skip the vendor
//!   ROCMFORGE_AMDGPU_TARGETS           e.g. `gfx90a,gfx1030`; default: the targets of
//!                                      DEFAULT_AMDGPU_TARGETS the found hipcc supports
//!   ROCMFORGE_CUDA_ARCHS               e.g. `80,90`; default 80,86,89,90 (PTX for the last)
//!   ROCMFORGE_REQUIRE_KERNELS=1        fail unless both vendors' kernels are built (CI)
//!   ROCMFORGE_KERNEL_CACHE             a directory for the compiled kernels, shared by every
//!                                      build that names it; default: each build's OUT_DIR
//!   HIP_PATH, ROCM_PATH, CUDA_PATH, PATH   where compilers are looked for

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::{env, fs};

/// Current CDNA (MI100 to MI350) and RDNA (RX 6000 to RX 9000) targets; each is kept only
/// if the found hipcc compiles for it.
const DEFAULT_AMDGPU_TARGETS: &[&str] = &[
    "gfx908", "gfx90a", "gfx942", "gfx950", "gfx1030", "gfx1100", "gfx1101", "gfx1102", "gfx1151",
    "gfx1200", "gfx1201",
];

/// Ampere, Ada and Hopper machine code; PTX of the last lets newer GPUs compile it at load.
const DEFAULT_CUDA_ARCHS: &[&str] = &["80", "86", "89", "90"];

const ENV_VARS: &[&str] = &[
    "ROCMFORGE_HIPCC",
    "ROCMFORGE_NVCC",
    "ROCMFORGE_AMDGPU_TARGETS",
    "ROCMFORGE_CUDA_ARCHS",
    "ROCMFORGE_REQUIRE_KERNELS",
    "ROCMFORGE_KERNEL_CACHE",
    "HIP_PATH",
    "ROCM_PATH",
    "CUDA_PATH",
    "PATH",
];

fn main() {
    set_soname();
    build_kernels();
}

/// The shared library's soname is `librocmforge.so.<RF_ABI_VERSION>`, so a host linked
/// against one C ABI never loads a library of another. The number is read from the
/// constant that also becomes the header's `RF_ABI_VERSION` and `rf_abi_version()`, so
/// the three cannot drift apart.
fn set_soname() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let source = manifest_dir.join("src/ffi/library.rs");
    println!("cargo:rerun-if-changed={}", source.display());
    if env::var("CARGO_CFG_TARGET_OS").as_deref() != Ok("linux") {
        return;
    }
    let text =
        fs::read_to_string(&source).unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
    let Some(abi) = abi_version(&text) else {
        panic!(
            "{} has no `pub const RF_ABI_VERSION: u32 = N;` line to take the soname from",
            source.display()
        );
    };
    println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,librocmforge.so.{abi}");
}

/// N of the line `pub const RF_ABI_VERSION: u32 = N;`.
fn abi_version(source: &str) -> Option<u32> {
    source.lines().find_map(|line| {
        let value = line
            .trim()
            .strip_prefix("pub const RF_ABI_VERSION: u32 = ")?;
        value.strip_suffix(';')?.trim().parse().ok()
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Vendor {
    Amd,
    Cuda,
}

impl Vendor {
    fn name(self) -> &'static str {
        match self {
            Vendor::Amd => "AMD",
            Vendor::Cuda => "CUDA",
        }
    }
}

/// A compiler that was found, and what it reports as its version.
struct Compiler {
    path: PathBuf,
    version: String,
}

/// One vendor's result: the embedded modules, or why there are none.
enum VendorBuild {
    Built {
        compiler: Compiler,
        targets: Vec<String>,
        /// The oldest driver that loads the code, in the vendor's encoding (0: any).
        min_driver: i32,
        /// (kernel file stem, code object path)
        modules: Vec<(String, PathBuf)>,
    },
    NotBuilt(String),
}

struct Paths {
    kernels_dir: PathBuf,
    out_dir: PathBuf,
    /// Where compiled kernels go. Each build of the crate (a profile, a feature set, clippy)
    /// has its own OUT_DIR, and each would compile every kernel again (minutes); builds
    /// that share this directory compile a kernel once, as its name carries the hash of
    /// everything that went into it.
    compiled_dir: PathBuf,
    manifest_dir: PathBuf,
    /// The compilers' TMPDIR, removed once they are done: hipcc leaves a few empty
    /// directories in it per kernel, which would otherwise pile up in /tmp by the
    /// thousand.
    scratch_dir: PathBuf,
}

impl Compiler {
    fn command(&self, paths: &Paths) -> Command {
        let mut command = Command::new(&self.path);
        command.env("TMPDIR", &paths.scratch_dir);
        command
    }
}

fn build_kernels() {
    println!("cargo:rerun-if-changed=kernels");
    for var in ENV_VARS {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo"));
    let compiled_dir = match env::var_os("ROCMFORGE_KERNEL_CACHE") {
        // Relative to the crate, as cargo runs this script there; absolute for the
        // include_bytes! of embedded_kernels.rs either way.
        Some(dir) if !dir.is_empty() => manifest_dir.join(dir),
        _ => out_dir.clone(),
    };
    fs::create_dir_all(&compiled_dir).unwrap_or_else(|e| {
        panic!(
            "create the kernel directory {}: {e}",
            compiled_dir.display()
        )
    });
    let scratch_dir = out_dir.join("compiler-tmp");
    fs::create_dir_all(&scratch_dir).expect("create OUT_DIR/compiler-tmp");
    let paths = Paths {
        kernels_dir: manifest_dir.join("kernels"),
        out_dir,
        compiled_dir,
        manifest_dir,
        scratch_dir,
    };
    let sources = kernel_sources(&paths.kernels_dir);

    // The two vendors' compilers run at the same time: each is mostly one process.
    let (amd, cuda) = std::thread::scope(|scope| {
        let amd = scope.spawn(|| build_amd(&paths, &sources));
        let cuda = scope.spawn(|| build_cuda(&paths, &sources));
        (join(amd), join(cuda))
    });
    // Only what the compilers left behind is lost if this fails.
    let _ = fs::remove_dir_all(&paths.scratch_dir);

    let missing: Vec<String> = [(Vendor::Amd, &amd), (Vendor::Cuda, &cuda)]
        .iter()
        .filter_map(|(vendor, build)| match build {
            VendorBuild::NotBuilt(reason) => Some(format!("{}: {reason}", vendor.name())),
            VendorBuild::Built { .. } => None,
        })
        .collect();
    if missing.len() == 2 {
        println!(
            "cargo:warning=built without GPU kernels ({})",
            missing.join("; ")
        );
    } else if let [one] = missing.as_slice() {
        println!("cargo:warning=built without {one}");
    }
    if env::var("ROCMFORGE_REQUIRE_KERNELS").as_deref() == Ok("1") && !missing.is_empty() {
        panic!(
            "ROCMFORGE_REQUIRE_KERNELS=1 but kernels were not built for {}",
            missing.join("; ")
        );
    }

    let generated = generate(&amd, &cuda);
    write_if_changed(
        &paths.out_dir.join("embedded_kernels.rs"),
        generated.as_bytes(),
    );
}

fn join<T>(handle: std::thread::ScopedJoinHandle<'_, T>) -> T {
    handle
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// `kernels/*.hip`, sorted so the generated table is stable.
fn kernel_sources(dir: &Path) -> Vec<PathBuf> {
    let mut sources: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "hip"))
                .collect()
        })
        .unwrap_or_default();
    sources.sort();
    sources
}

fn stem(source: &Path) -> String {
    source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------- AMD

fn build_amd(paths: &Paths, sources: &[PathBuf]) -> VendorBuild {
    let hipcc = match find_compiler(Vendor::Amd, paths) {
        Ok(c) => c,
        Err(reason) => return VendorBuild::NotBuilt(reason),
    };
    let targets = match env::var("ROCMFORGE_AMDGPU_TARGETS") {
        Ok(list) => split_list(&list),
        Err(_) => probe_amd_targets(&hipcc, paths),
    };
    if targets.is_empty() {
        return VendorBuild::NotBuilt(format!(
            "{} compiles for none of {}",
            hipcc.path.display(),
            DEFAULT_AMDGPU_TARGETS.join(", ")
        ));
    }
    let mut args: Vec<String> = ["--genco", "-O3", "-std=c++17"].map(String::from).to_vec();
    args.extend(targets.iter().map(|t| format!("--offload-arch={t}")));
    let modules = compile_all(&hipcc, &args, paths, sources, "hsaco");
    VendorBuild::Built {
        compiler: hipcc,
        targets,
        min_driver: 0,
        modules,
    }
}

/// The default targets the compiler accepts, each tried by compiling a one-line kernel
/// (all at once). Cached in OUT_DIR per compiler version.
fn probe_amd_targets(hipcc: &Compiler, paths: &Paths) -> Vec<String> {
    let key = fnv1a(&[
        hipcc.path.to_string_lossy().as_bytes(),
        hipcc.version.as_bytes(),
        DEFAULT_AMDGPU_TARGETS.join(",").as_bytes(),
    ]);
    let cache = paths.out_dir.join(format!("amdgpu-targets-{key:016x}.txt"));
    if let Ok(list) = fs::read_to_string(&cache) {
        return split_list(&list);
    }
    let probe_dir = paths.out_dir.join("amdgpu-probe");
    fs::create_dir_all(&probe_dir).expect("create OUT_DIR/amdgpu-probe");
    let source = probe_dir.join("probe.hip");
    fs::write(
        &source,
        "extern \"C\" __global__ void rf_probe(int *p) { p[0] = 1; }\n",
    )
    .expect("write the probe kernel");
    let children: Vec<(&str, std::io::Result<Child>)> = DEFAULT_AMDGPU_TARGETS
        .iter()
        .map(|target| {
            let child = hipcc
                .command(paths)
                .args(["--genco", &format!("--offload-arch={target}"), "-o"])
                .arg(probe_dir.join(format!("{target}.co")))
                .arg(&source)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            (*target, child)
        })
        .collect();
    let supported: Vec<String> = children
        .into_iter()
        .filter_map(|(target, child)| {
            let ok = child.and_then(|mut c| c.wait()).is_ok_and(|s| s.success());
            ok.then(|| target.to_owned())
        })
        .collect();
    fs::write(&cache, supported.join(",")).expect("write the probe cache");
    supported
}

// --------------------------------------------------------------------------- CUDA

fn build_cuda(paths: &Paths, sources: &[PathBuf]) -> VendorBuild {
    let nvcc = match find_compiler(Vendor::Cuda, paths) {
        Ok(c) => c,
        Err(reason) => return VendorBuild::NotBuilt(reason),
    };
    let archs = match env::var("ROCMFORGE_CUDA_ARCHS") {
        Ok(list) => split_list(&list),
        Err(_) => DEFAULT_CUDA_ARCHS.iter().map(|a| a.to_string()).collect(),
    };
    let Some(newest) = archs.last().cloned() else {
        return VendorBuild::NotBuilt("ROCMFORGE_CUDA_ARCHS is empty".into());
    };
    // A fatbin from nvcc X.Y needs a driver of at least X.Y: its PTX uses that release's
    // ISA version, and the driver's minor-version compatibility starts at X.0.
    let Some(min_driver) = nvcc_release(&nvcc.version) else {
        panic!(
            "cannot read the release from `{} --version`: {}",
            nvcc.path.display(),
            nvcc.version
        );
    };
    let mut args: Vec<String> = [
        "-fatbin",
        "-x",
        "cu",
        "-O3",
        "-std=c++17",
        // File and line in compute-sanitizer reports; no effect on the machine code.
        "-lineinfo",
        // Compile the targets in parallel.
        "--threads",
        "0",
    ]
    .map(String::from)
    .to_vec();
    let mut targets = Vec::new();
    for arch in &archs {
        let code = if *arch == newest {
            format!("[sm_{arch},compute_{arch}]")
        } else {
            format!("sm_{arch}")
        };
        args.push("-gencode".into());
        args.push(format!("arch=compute_{arch},code={code}"));
        targets.push(format!("sm_{arch}"));
    }
    targets.push(format!("compute_{newest}"));
    let modules = compile_all(&nvcc, &args, paths, sources, "fatbin");
    VendorBuild::Built {
        compiler: nvcc,
        targets,
        min_driver,
        modules,
    }
}

/// `release 13.0` in nvcc's banner as the driver API's encoding, 13000.
fn nvcc_release(version: &str) -> Option<i32> {
    let release = version.split("release ").nth(1)?;
    let number = release.split([',', ' ', '\n']).next()?;
    let (major, minor) = number.split_once('.')?;
    Some(major.trim().parse::<i32>().ok()? * 1000 + minor.trim().parse::<i32>().ok()? * 10)
}

// ---------------------------------------------------------------------- compiling

/// Compiles every source with `args`, all at once; reuses outputs whose inputs (compiler,
/// flags, source and headers) are unchanged. Panics with the compiler's output on failure.
fn compile_all(
    compiler: &Compiler,
    args: &[String],
    paths: &Paths,
    sources: &[PathBuf],
    extension: &str,
) -> Vec<(String, PathBuf)> {
    let headers = header_bytes(&paths.kernels_dir);
    let mut pending = Vec::new();
    let mut modules = Vec::new();
    for source in sources {
        let text = fs::read(source).unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
        let key = fnv1a(&[
            compiler.path.to_string_lossy().as_bytes(),
            compiler.version.as_bytes(),
            args.join(" ").as_bytes(),
            &text,
            &headers,
        ]);
        let name = stem(source);
        let output = paths
            .compiled_dir
            .join(format!("{name}-{key:016x}.{extension}"));
        if !output.exists() {
            // Named by process, so two builds compiling the same kernel into a shared
            // directory at once never write one file.
            let partial = output.with_extension(format!("{}.partial", std::process::id()));
            let child = compiler
                .command(paths)
                .args(args)
                .arg("-I")
                .arg(&paths.kernels_dir)
                .arg("-o")
                .arg(&partial)
                .arg(source)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("run {}: {e}", compiler.path.display()));
            pending.push((source.clone(), partial, output.clone(), child));
        }
        // Run again should the object go (a cleared ROCMFORGE_KERNEL_CACHE), rather than
        // leave embedded_kernels.rs naming a missing file.
        println!("cargo:rerun-if-changed={}", output.display());
        modules.push((name, output));
    }
    for (source, partial, output, child) in pending {
        let result = child.wait_with_output();
        let Ok(Output {
            status,
            stdout,
            stderr,
        }) = result
        else {
            panic!("wait for {}: {result:?}", compiler.path.display());
        };
        if !status.success() {
            panic!(
                "{} failed on {} ({status}):\n{}{}\n(ROCMFORGE_HIPCC=none or ROCMFORGE_NVCC=none \
                 builds without that vendor's kernels)",
                compiler.path.display(),
                source.display(),
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
        // Renamed only when complete, so an interrupted build never leaves a truncated
        // object under the name that marks it up to date.
        fs::rename(&partial, &output).expect("move the compiled kernel into place");
    }
    modules
}

/// Every header in kernels/, in a stable order: a change to one recompiles everything.
fn header_bytes(dir: &Path) -> Vec<u8> {
    let mut headers: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "h"))
                .collect()
        })
        .unwrap_or_default();
    headers.sort();
    headers
        .iter()
        .flat_map(|h| fs::read(h).unwrap_or_default())
        .collect()
}

/// 64-bit FNV-1a over the parts, each followed by a separator: stable across Rust
/// versions, unlike `DefaultHasher`, so cached outputs keep their names.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for part in parts {
        for &byte in part.iter().chain([0xffu8].iter()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

fn split_list(list: &str) -> Vec<String> {
    list.split([',', ';', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

// ------------------------------------------------------------------- finding them

/// The compiler named by the environment, else the first found in the usual places.
fn find_compiler(vendor: Vendor, paths: &Paths) -> Result<Compiler, String> {
    let (override_var, program) = match vendor {
        Vendor::Amd => ("ROCMFORGE_HIPCC", "hipcc"),
        Vendor::Cuda => ("ROCMFORGE_NVCC", "nvcc"),
    };
    let mut candidates = Vec::new();
    if let Some(chosen) = env::var_os(override_var) {
        if chosen == "none" {
            return Err(format!("{override_var}=none"));
        }
        candidates.push(PathBuf::from(chosen));
    } else {
        let roots: &[&str] = match vendor {
            Vendor::Amd => &["HIP_PATH", "ROCM_PATH"],
            Vendor::Cuda => &["CUDA_PATH"],
        };
        for root in roots {
            if let Some(root) = env::var_os(root) {
                candidates.push(Path::new(&root).join("bin").join(program));
            }
        }
        if vendor == Vendor::Cuda {
            // scripts/install-gpu-compilers.sh puts PyPI's nvcc here.
            candidates.extend(venv_nvcc(&paths.manifest_dir.join(".venv-cuda")));
        }
        if let Some(path) = env::var_os("PATH") {
            candidates.extend(env::split_paths(&path).map(|dir| dir.join(program)));
        }
        candidates.push(match vendor {
            Vendor::Amd => PathBuf::from("/opt/rocm/bin/hipcc"),
            Vendor::Cuda => PathBuf::from("/usr/local/cuda/bin/nvcc"),
        });
    }
    let Some(path) = candidates.into_iter().find(|p| p.is_file()) else {
        return Err(format!("no {program} found"));
    };
    println!("cargo:rerun-if-changed={}", path.display());
    let output = Command::new(&path)
        .arg("--version")
        .output()
        .map_err(|e| format!("{} does not run: {e}", path.display()))?;
    if !output.status.success() {
        return Err(format!("`{} --version` failed", path.display()));
    }
    let mut version = String::from_utf8_lossy(&output.stdout).into_owned();
    version.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(Compiler { path, version })
}

/// `<venv>/lib/python3.*/site-packages/nvidia/cu13/bin/nvcc`, if the venv has one.
fn venv_nvcc(venv: &Path) -> Option<PathBuf> {
    let lib = fs::read_dir(venv.join("lib")).ok()?;
    lib.flatten()
        .map(|python| python.path().join("site-packages/nvidia/cu13/bin/nvcc"))
        .find(|nvcc| nvcc.is_file())
}

// --------------------------------------------------------------------- generating

fn generate(amd: &VendorBuild, cuda: &VendorBuild) -> String {
    let mut out = String::from(
        "// Generated by build.rs from kernels/*.hip: the GPU code embedded in this library.\n",
    );
    for (constant, build) in [("AMD_KERNELS", amd), ("CUDA_KERNELS", cuda)] {
        let _ = writeln!(
            out,
            "pub static {constant}: KernelBuild = {};",
            describe(build)
        );
    }
    out
}

fn describe(build: &VendorBuild) -> String {
    match build {
        VendorBuild::NotBuilt(reason) => format!("KernelBuild::NotBuilt {{ reason: {reason:?} }}"),
        VendorBuild::Built {
            compiler,
            targets,
            min_driver,
            modules,
        } => {
            let first_line = compiler
                .version
                .lines()
                .filter(|l| l.contains("release") || l.contains("HIP version"))
                .collect::<Vec<_>>()
                .join(" ");
            let compiler = format!("{} ({})", compiler.path.display(), first_line.trim());
            // BTreeMap: one entry per module name, sorted.
            let modules: BTreeMap<&str, &Path> = modules
                .iter()
                .map(|(n, p)| (n.as_str(), p.as_path()))
                .collect();
            let modules: Vec<String> = modules
                .iter()
                .map(|(name, path)| {
                    let path = path.to_string_lossy();
                    format!(
                        "EmbeddedModule {{ name: {name:?}, image: &Aligned(*include_bytes!({path:?})) }}"
                    )
                })
                .collect();
            format!(
                "KernelBuild::Built(BuiltKernels {{ compiler: {compiler:?}, targets: &{targets:?}, \
                 min_driver: {min_driver}, modules: &[{}] }})",
                modules.join(", ")
            )
        }
    }
}

/// Leaves the file untouched when its contents would not change, so nothing that
/// includes it recompiles.
fn write_if_changed(path: &Path, contents: &[u8]) {
    if fs::read(path).ok().as_deref() != Some(contents) {
        fs::write(path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}
