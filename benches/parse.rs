//! Benchmark: parsing a generated 10 MB notebook (prose, transcripts, annotated cells with
//! output blocks, plain blocks), median of several runs. `cargo bench --bench parse`.

use std::path::Path;
use std::time::{Duration, Instant};

use labrun::notebook::{ParseOptions, parse};

fn notebook(target: usize) -> String {
    let mut s = String::from("---\nlabrun:\n  backend: host\n---\n\n# A big notebook\n\n");
    let mut n = 0;
    while s.len() < target {
        n += 1;
        s.push_str(&format!(
            "## Section {n}\n\nSome prose about step {n}, long enough to look like a real workshop,\n\
             with `inline code`, a [link](https://example.org/{n}) and *emphasis*.\n\n\
             ```console\n$ echo \"step {n}\"\nstep {n}\n$ seq 3\n1\n2\n3\n```\n\n\
             ```bash | {{type: 'command', timeout: '5s'}}\nprintf 'value %d\\n' {n}\n```\n\
             ```output\nvalue {n}\n```\n\n```python\nprint(\"not a cell: {n}\")\n```\n\n"
        ));
    }
    s
}

fn main() {
    let text = notebook(10 * 1024 * 1024);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let mut times: Vec<Duration> = Vec::new();
    let mut cells = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let nb = parse(
            Path::new("big.md"),
            text.as_bytes(),
            &ParseOptions::default(),
        )
        .expect("the generated notebook parses");
        times.push(start.elapsed());
        cells = nb.cells.len();
    }
    times.sort();
    // The floor: pulldown-cmark alone, walking every event with its offsets.
    let mut floor: Vec<Duration> = Vec::new();
    for _ in 0..runs {
        let start = Instant::now();
        let mut n = 0usize;
        for (event, range) in
            pulldown_cmark::Parser::new_ext(&text, pulldown_cmark::Options::empty())
                .into_offset_iter()
        {
            n += range.len() + matches!(event, pulldown_cmark::Event::End(_)) as usize;
        }
        std::hint::black_box(n);
        floor.push(start.elapsed());
    }
    floor.sort();
    println!(
        "pulldown-cmark alone: median {:.1} ms",
        floor[runs / 2].as_secs_f64() * 1e3
    );
    println!(
        "parse {:.1} MB, {} cells: median {:.1} ms (min {:.1}, max {:.1}, {} runs)",
        text.len() as f64 / 1e6,
        cells,
        times[runs / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3,
        runs
    );
}
