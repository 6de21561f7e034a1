//! The command transcripts of the book's CLI chapter, run and compared with
//! what the chapter shows. Only the chapter's `console` blocks run here; the
//! two-terminal `sh` blocks (servers and clients) are illustrations.

#[test]
fn the_cli_chapter_transcripts_match_the_binary() {
    trycmd::TestCases::new()
        .register_bin("msg", trycmd::cargo::cargo_bin!("msg"))
        // Help text wraps at the terminal's width; the chapter shows 100 columns.
        .env("COLUMNS", "100")
        .case("../../book/src/cli.md");
}
