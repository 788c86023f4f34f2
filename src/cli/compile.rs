//! `rfc compile MODEL.gguf --target gfx1100 --emit-kernels DIR`: writes
//! every specialized kernel source the model's compiled plan needs
//! (DIR/<label>.hip), for offline compile checks (scripts/ci-gfx1100.sh).

use std::path::PathBuf;

use rocmforge::codegen::plan::{kernel_sources, PlanOptions};
use rocmforge::codegen::Target;
use rocmforge::frontend;
use rocmforge::gguf::GgufFile;
use rocmforge::ir::DimEnv;
use rocmforge::passes;

use super::CmdResult;

#[derive(Debug, clap::Args)]
pub struct CompileArgs {
    /// The GGUF file.
    pub model: PathBuf,
    /// The GPU to specialize for: gfx1100, sm_90, ...
    #[arg(long, default_value = "gfx1100")]
    pub target: String,
    /// Write each specialized kernel source into this directory.
    #[arg(long, value_name = "DIR")]
    pub emit_kernels: PathBuf,
    /// Tokens per KV-cache page.
    #[arg(long, default_value_t = 16)]
    pub page_size: u32,
}

pub fn run(args: CompileArgs) -> CmdResult {
    let target = Target::parse(&args.target)?;
    let file = GgufFile::open(&args.model)?;
    let (_, graph) = frontend::build_graph(&file)?;
    let compiled = passes::compile(graph, DimEnv::default())?;
    let opts = PlanOptions {
        page_size: args.page_size,
    };
    let sources = kernel_sources(&compiled.graph, &opts)?;
    std::fs::create_dir_all(&args.emit_kernels)?;
    for (label, src) in &sources {
        let path = args.emit_kernels.join(format!("{label}.hip"));
        std::fs::write(&path, src.text())?;
    }
    println!(
        "wrote {} kernel sources for {target} to {}",
        sources.len(),
        args.emit_kernels.display()
    );
    Ok(())
}
