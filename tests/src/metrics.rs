//! Prometheus text read back: a series' name and labels.

/// `name{a="1",b="2"}` as its name and label pairs (values unescaped).
pub fn parse_series(s: &str) -> (&str, Vec<(String, String)>) {
    let Some((name, rest)) = s.split_once('{') else {
        return (s.trim(), Vec::new());
    };
    let mut labels = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
        let key = key.trim_start_matches(',').trim().to_string();
        if key.is_empty() || key.starts_with('}') || chars.next() != Some('"') {
            break;
        }
        let mut value = String::new();
        while let Some(c) = chars.next() {
            match c {
                '\\' => value.extend(chars.next()),
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key, value));
    }
    (name.trim(), labels)
}

/// The sum of the series of Prometheus `text` named as `series` is, with at least its labels.
pub fn sum(text: &str, series: &str) -> f64 {
    let (name, want) = parse_series(series);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (s, v) = l.rsplit_once(' ')?;
            let (n, labels) = parse_series(s);
            let matches = n == name && want.iter().all(|w| labels.contains(w));
            matches.then(|| v.trim().parse::<f64>().ok()).flatten()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_labels() {
        let (n, l) = parse_series(r#"edge_x_total{site="a,b",status="hit"}"#);
        assert_eq!(n, "edge_x_total");
        assert_eq!(
            l,
            [
                ("site".into(), "a,b".into()),
                ("status".into(), "hit".into())
            ]
        );
        assert_eq!(parse_series("edge_y").0, "edge_y");
        assert!(parse_series("edge_y").1.is_empty());
        let (_, q) = parse_series(r#"e{k="say \"hi\""}"#);
        assert_eq!(q[0].1, "say \"hi\"");
    }
}
