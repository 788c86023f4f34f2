//! `rfc inspect MODEL.gguf [--json] [--full]`: the file's header as a report
//! (metadata, tensor table, totals per type, parameter count, file size).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use rocmforge::artifact;
use rocmforge::gguf::{GgufFile, Value};

use super::CmdResult;

/// Arrays longer than this are summarized unless `--full`.
const MAX_ARRAY_ITEMS: usize = 16;
/// How many first items a summarized array shows.
const HEAD_ITEMS: usize = 8;
/// Strings longer than this (in chars) are cut in the text report unless `--full`.
const MAX_STRING_CHARS: usize = 160;

#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The model: a GGUF file or an artifact from `rfc compile`.
    pub model: PathBuf,
    /// Print one JSON object instead of the text report.
    #[arg(long)]
    pub json: bool,
    /// Print long arrays and strings whole.
    #[arg(long)]
    pub full: bool,
    /// Artifacts: also check every weight against its stored checksum.
    #[arg(long)]
    pub verify: bool,
}

pub fn run(args: InspectArgs) -> CmdResult {
    let file = std::sync::Arc::new(GgufFile::open(&args.model)?);
    // An artifact's summary (or the error that it is damaged) follows the
    // GGUF view.
    let artifact = artifact::summary::for_inspect(&file, &args.model, args.verify);
    let mut out = std::io::stdout().lock();
    let written = if args.json {
        let mut json = report_json(&file, args.full);
        if let Ok(Some(s)) = &artifact {
            json["artifact"] = s.to_json();
        }
        serde_json::to_writer_pretty(&mut out, &json)
            .map_err(std::io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        write_text(&mut out, &file, args.full).and_then(|()| match &artifact {
            Ok(Some(s)) => write!(out, "\n{}", s.to_text()),
            _ => Ok(()),
        })
    };
    match written {
        // `rfc inspect m.gguf | head` is not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => {
            r?;
            artifact?;
            Ok(())
        }
    }
}

/// Tensor count, elements and bytes of one tensor type.
#[derive(Default)]
struct TypeTotal {
    tensors: u64,
    elements: u64,
    bytes: u64,
}

fn type_totals(file: &GgufFile) -> BTreeMap<&'static str, TypeTotal> {
    let mut totals: BTreeMap<&'static str, TypeTotal> = BTreeMap::new();
    for t in file.tensors() {
        let e = totals.entry(t.ty.name()).or_default();
        // Saturating: a hostile file may list many tensors over the same bytes.
        e.tensors += 1;
        e.elements = e.elements.saturating_add(t.n_elements());
        e.bytes = e.bytes.saturating_add(t.size);
    }
    totals
}

fn parameter_count(file: &GgufFile) -> u64 {
    file.tensors()
        .iter()
        .fold(0u64, |n, t| n.saturating_add(t.n_elements()))
}

fn report_json(file: &GgufFile, full: bool) -> serde_json::Value {
    let metadata: serde_json::Map<String, serde_json::Value> = file
        .metadata()
        .iter()
        .map(|(k, v)| {
            let j = if full { v.to_json() } else { summarize_json(v) };
            (k.to_string(), j)
        })
        .collect();
    let tensors: Vec<serde_json::Value> = file
        .tensors()
        .iter()
        .map(|t| {
            serde_json::json!({
                "name": t.name,
                "type": t.ty.name(),
                "shape": t.dims,
                "offset": t.offset,
                "size": t.size,
            })
        })
        .collect();
    let totals: serde_json::Map<String, serde_json::Value> = type_totals(file)
        .into_iter()
        .map(|(ty, t)| {
            let j = serde_json::json!({
                "tensors": t.tensors, "elements": t.elements, "bytes": t.bytes,
            });
            (ty.to_string(), j)
        })
        .collect();
    serde_json::json!({
        "file": file.path().map(|p| p.display().to_string()),
        "file_size": file.file_len(),
        "version": file.version(),
        "architecture": file.architecture(),
        "spec": spec_choice(file).ok().map(|(name, _)| name),
        "spec_reason": spec_choice(file).map_or_else(|e| e, |(_, why)| why),
        "spec_gaps": gaps(file).map(|d| serde_json::json!({
            "closest_spec": d.closest,
            "unknown_tensors": d.unknown_tensors,
            "unread_keys": d.unread_keys,
            "missing_keys": d.missing_keys,
            "needs": d.needs,
        })),
        "alignment": file.alignment(),
        "data_offset": file.data_offset(),
        "parameter_count": parameter_count(file),
        "metadata": metadata,
        "tensors": tensors,
        "type_totals": totals,
    })
}

/// For a file the compiler cannot build: what its closest built-in spec
/// lacks (`None` when the graph builds).
fn gaps(file: &GgufFile) -> Option<rocmforge::frontend::diagnose::Diagnosis> {
    rocmforge::frontend::build_graph(file).err()?;
    Some(rocmforge::frontend::diagnose::diagnose(file))
}

fn write_gaps(out: &mut impl Write, file: &GgufFile) -> std::io::Result<()> {
    let Some(d) = gaps(file) else {
        return Ok(());
    };
    if let Err(e) = rocmforge::frontend::build_graph(file) {
        writeln!(out, "build:         fails: {e}")?;
    }
    writeln!(out, "closest spec:  {}", d.closest)?;
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".into()
        } else {
            v.join(", ")
        }
    };
    writeln!(out, "  unknown tensors: {}", list(&d.unknown_tensors))?;
    writeln!(out, "  unread keys:     {}", list(&d.unread_keys))?;
    writeln!(out, "  missing keys:    {}", list(&d.missing_keys))?;
    writeln!(out, "  needs:           {}", list(&d.needs))
}

/// The architecture spec the compiler would choose, and why (or why none).
fn spec_choice(file: &GgufFile) -> Result<(String, String), String> {
    rocmforge::frontend::detect(file)
        .map(|d| (d.spec.name.clone(), d.reason))
        .map_err(|e| e.to_string())
}

fn summarize_json(v: &Value) -> serde_json::Value {
    match v {
        Value::Array(_, items) if items.len() > MAX_ARRAY_ITEMS => v.to_json_summary(HEAD_ITEMS),
        v => v.to_json_summary(MAX_ARRAY_ITEMS),
    }
}

fn write_text(out: &mut impl Write, file: &GgufFile, full: bool) -> std::io::Result<()> {
    if let Some(p) = file.path() {
        writeln!(out, "file:          {}", p.display())?;
    }
    writeln!(out, "GGUF version:  {}", file.version())?;
    let arch = file.architecture().unwrap_or("(none)");
    writeln!(out, "architecture:  {arch}")?;
    match spec_choice(file) {
        Ok((name, why)) => writeln!(out, "spec:          {name} ({why})")?,
        Err(e) => writeln!(out, "spec:          none ({e})")?,
    }
    write_gaps(out, file)?;
    writeln!(out, "alignment:     {}", file.alignment())?;
    writeln!(out, "data offset:   {}", file.data_offset())?;
    write_metadata(out, file, full)?;
    write_tensor_table(out, file)?;
    write_totals(out, file)?;
    writeln!(out)?;
    writeln!(out, "parameters:    {}", parameter_count(file))?;
    writeln!(out, "file size:     {} bytes", file.file_len())
}

fn write_metadata(out: &mut impl Write, file: &GgufFile, full: bool) -> std::io::Result<()> {
    let md = file.metadata();
    writeln!(out, "\nmetadata ({} keys):", md.len())?;
    let key_w = md.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in md.iter() {
        let ty = v.type_description();
        writeln!(out, "  {k:key_w$}  {ty:<16} {}", value_text(v, full))?;
    }
    Ok(())
}

fn value_text(v: &Value, full: bool) -> String {
    match v {
        _ if full => v.summary(usize::MAX),
        Value::String(s) if s.chars().count() > MAX_STRING_CHARS => {
            let head: String = s.chars().take(MAX_STRING_CHARS).collect();
            format!("{head:?}... ({} bytes)", s.len())
        }
        Value::Array(_, items) if items.iter().any(is_long_string) => {
            // An artifact's kernel sources: each item shortened like a long
            // string, so the listing stays readable.
            let shown: Vec<String> = items
                .iter()
                .take(HEAD_ITEMS)
                .map(|item| value_text(item, false))
                .collect();
            let more = if items.len() > HEAD_ITEMS {
                ", ..."
            } else {
                ""
            };
            format!("[string; {}] [{}{more}]", items.len(), shown.join(", "))
        }
        Value::Array(_, items) if items.len() > MAX_ARRAY_ITEMS => v.summary(HEAD_ITEMS),
        v => v.summary(MAX_ARRAY_ITEMS),
    }
}

fn is_long_string(v: &Value) -> bool {
    matches!(v, Value::String(s) if s.chars().count() > MAX_STRING_CHARS)
}

fn write_tensor_table(out: &mut impl Write, file: &GgufFile) -> std::io::Result<()> {
    let tensors = file.tensors();
    writeln!(out, "\ntensors ({}):", tensors.len())?;
    let shape = |dims: &[u64]| {
        let d: Vec<String> = dims.iter().map(u64::to_string).collect();
        format!("[{}]", d.join(", "))
    };
    let name_w = tensors
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let shape_w = tensors
        .iter()
        .map(|t| shape(&t.dims).len())
        .max()
        .unwrap_or(5);
    let shape_w = shape_w.max(5);
    writeln!(
        out,
        "  {:name_w$}  {:<7}  {:shape_w$}  {:>12}  {:>12}",
        "name", "type", "shape", "offset", "bytes"
    )?;
    for t in tensors {
        writeln!(
            out,
            "  {:name_w$}  {:<7}  {:shape_w$}  {:>12}  {:>12}",
            t.name,
            t.ty.name(),
            shape(&t.dims),
            t.offset,
            t.size
        )?;
    }
    Ok(())
}

fn write_totals(out: &mut impl Write, file: &GgufFile) -> std::io::Result<()> {
    writeln!(out, "\ntotals by type:")?;
    writeln!(
        out,
        "  {:<7}  {:>7}  {:>12}  {:>12}",
        "type", "tensors", "elements", "bytes"
    )?;
    for (ty, t) in type_totals(file) {
        writeln!(
            out,
            "  {ty:<7}  {:>7}  {:>12}  {:>12}",
            t.tensors, t.elements, t.bytes
        )?;
    }
    Ok(())
}
