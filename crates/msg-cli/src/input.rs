//! Where outgoing payloads come from: the command line, a file or stdin,
//! whole or line by line.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use bytes::Bytes;
use futures::Stream;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};

use crate::cli::InputArgs;

/// One source of outgoing data.
#[derive(Debug)]
pub(crate) enum Source {
    /// The DATA argument.
    Arg(String),
    /// `--file PATH`.
    File(PathBuf),
    /// Standard input.
    Stdin,
}

impl Source {
    /// The source the command line asks for: DATA, else `--file`, else
    /// stdin.
    pub(crate) fn new(data: Option<String>, input: &InputArgs) -> Self {
        match (data, &input.file) {
            (Some(data), _) => Source::Arg(data),
            (None, Some(path)) => Source::File(path.clone()),
            (None, None) => Source::Stdin,
        }
    }

    /// The whole input, as one payload.
    ///
    /// # Errors
    ///
    /// The file or stdin cannot be read.
    pub(crate) async fn read_all(self) -> anyhow::Result<Bytes> {
        match self {
            Source::Arg(data) => Ok(Bytes::from(data)),
            Source::File(path) => {
                let data = tokio::fs::read(&path)
                    .await
                    .with_context(|| format!("cannot read {}", path.display()))?;
                Ok(Bytes::from(data))
            }
            Source::Stdin => {
                if std::io::stdin().is_terminal() {
                    eprintln!("msg: reading the message from stdin (end it with Ctrl-D)");
                }
                let mut data = Vec::new();
                tokio::io::stdin()
                    .read_to_end(&mut data)
                    .await
                    .context("cannot read stdin")?;
                Ok(Bytes::from(data))
            }
        }
    }

    /// The input's lines, each without its `\n` (or `\r\n`), as they
    /// arrive: a line typed on a terminal is yielded when Enter is pressed.
    ///
    /// # Errors
    ///
    /// The file cannot be opened; later read errors come through the
    /// stream.
    pub(crate) async fn lines(
        self,
    ) -> anyhow::Result<impl Stream<Item = anyhow::Result<Bytes>> + Send + Unpin + 'static> {
        let reader: Box<dyn AsyncBufRead + Send + Unpin> = match self {
            Source::Arg(data) => Box::new(std::io::Cursor::new(data.into_bytes())),
            Source::File(path) => {
                let file = tokio::fs::File::open(&path)
                    .await
                    .with_context(|| format!("cannot read {}", path.display()))?;
                Box::new(BufReader::new(file))
            }
            Source::Stdin => Box::new(BufReader::new(tokio::io::stdin())),
        };
        Ok(Box::pin(futures::stream::try_unfold(
            reader,
            |mut reader| async move {
                let mut line = Vec::new();
                let n = reader
                    .read_until(b'\n', &mut line)
                    .await
                    .context("cannot read input")?;
                if n == 0 {
                    return Ok(None);
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                }
                Ok(Some((Bytes::from(line), reader)))
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    #[tokio::test]
    async fn lines_drop_their_line_endings() {
        let lines: Vec<Bytes> = Source::Arg("a\nb\r\n\nc".into())
            .lines()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(lines, ["a", "b", "", "c"]);
    }

    #[tokio::test]
    async fn a_missing_file_names_its_path() {
        let err = Source::File("/no/such/file".into())
            .read_all()
            .await
            .unwrap_err();
        assert!(format!("{err:#}").starts_with("cannot read /no/such/file: "));
    }
}
