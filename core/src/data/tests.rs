use super::*;
use serde_json::json;

/// The npm package's parser (the one text-held data meets in practice).
fn parse(text: &str, depth: usize) -> std::result::Result<Value, String> {
    contextkit_json::parse(text, depth, false).map_err(|e| e.to_string())
}

fn text(json: &str) -> Data {
    Data::from_json(json, parse).unwrap()
}

#[test]
fn text_is_kept_as_given_and_reads_as_its_value() {
    let d = text(" {\"b\":[1,2.5,\"x\"],\"a\":null} ");
    assert_eq!(d.as_json(), Some(r#"{"b":[1,2.5,"x"],"a":null}"#));
    assert_eq!(d.json_text(), r#"{"b":[1,2.5,"x"],"a":null}"#);
    assert_eq!(d, json!({ "a": null, "b": [1, 2.5, "x"] }));
    assert_eq!(json!({ "a": null, "b": [1, 2.5, "x"] }), d);
    assert_eq!(d["b"][1], 2.5);
    assert!(d.is_object());
    assert_eq!(d.text_len(), Some(26));
}

#[test]
fn a_tree_is_a_value() {
    let d = Data::from(json!({ "b": 1, "a": [true] }));
    assert_eq!(d.as_json(), None);
    assert_eq!(d.json_text(), r#"{"a":[true],"b":1}"#);
    assert_eq!(d.text_len(), None);
    assert_eq!(d.clone().into_value(), json!({ "a": [true], "b": 1 }));
    assert_eq!(Data::default(), json!({}));
}

#[test]
fn serializes_as_its_value() {
    let d = text(r#"{"z":1.0,"a":"\u00e9"}"#);
    let out = serde_json::to_string(&(&d, json!({ "k": 1 }))).unwrap();
    assert_eq!(out, r#"[{"a":"é","z":1.0},{"k":1}]"#);
    // Not kept: a storage's writes do not double the memory of its data.
    let Repr::Text { tree, .. } = &d.0 else {
        panic!("text")
    };
    assert!(tree.get().is_none());
    let back: Data = serde_json::from_str(r#"{"z":1.0}"#).unwrap();
    assert_eq!(back.as_json(), None);
    assert_eq!(back, json!({ "z": 1.0 }));
}

#[test]
fn refuses_what_is_not_json() {
    for bad in [
        "",
        "{",
        r#"{"a":}"#,
        r#"{"a":1,}"#,
        "[01]",
        "{\"a\":\"\u{1}\"}",
        r#"{"a":"\ud800"}"#,
        r#"{"a":1} x"#,
        "{'a':1}",
        "NaN",
    ] {
        let err = Data::from_json(bad, parse).unwrap_err();
        assert_eq!(err.code(), "INVALID_ARGUMENT", "{bad:?}");
        assert!(
            err.to_string().contains("context data is not valid JSON"),
            "{err}"
        );
    }
}

#[test]
fn refuses_numbers_out_of_range_and_surrogates_alone_when_made() {
    let err = Data::from_json(r#"{"a":[1e400]}"#, parse).unwrap_err();
    assert_eq!(err.code(), "INVALID_ARGUMENT");
    let huge = format!("{{\"a\":{}}}", "9".repeat(400));
    assert_eq!(
        Data::from_json(huge, parse).unwrap_err().code(),
        "INVALID_ARGUMENT"
    );
    let lone = Data::from_json(r#"{"a":"\ud800"}"#, parse).unwrap_err();
    assert_eq!(lone.code(), "INVALID_ARGUMENT");
    // In range: read when made to be sure, and no tree is kept.
    for ok in [
        r#"{"a":1e300}"#,
        r#"{"a":"\ud83d\ude00"}"#,
        r#"{"a":1e-400,"b":1e-7}"#,
    ] {
        let d = text(ok);
        let Repr::Text { tree, .. } = &d.0 else {
            panic!("text")
        };
        assert!(tree.get().is_none(), "{ok}");
    }
    assert_eq!(text(r#"{"a":"\ud83d\ude00"}"#)["a"], "😀");
    assert_eq!(text(r#"{"a":1e-400}"#)["a"], 0.0);
}

/// A parser that reads less deep than it promised is caught when the data
/// is made, not when a tree is needed.
#[test]
fn a_parser_short_of_the_depth_limit_fails_when_the_data_is_made() {
    fn shallow(text: &str, _: usize) -> std::result::Result<Value, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(Data::from_json(deep(MAX_DEPTH - 1), shallow).is_ok());
    let err = Data::from_json(deep(MAX_DEPTH), shallow).unwrap_err();
    assert!(err.to_string().contains("recursion limit"), "{err}");
    assert!(Data::from_json(deep(MAX_DEPTH), crate::parse_json).is_ok());
}

#[test]
fn depth_counts_containers_not_brackets_in_strings() {
    let shape = |t: &[u8]| {
        contextkit_json::check(t)
            .map(|s| (s.depth, s.read_now))
            .unwrap()
    };
    assert_eq!(shape(br#"{"a":[1,{"b":"[[[{{"}]}"#), (3, false));
    assert_eq!(shape(br#"{"a":"\"[","b":[]}"#), (2, false));
    assert_eq!(shape(br#" [ [ ] , { } ] "#), (2, false));
    assert_eq!(shape(b"42"), (0, false));
    assert_eq!(shape(b"-4.5E+3"), (0, true));
    assert_eq!(shape(b"4e3"), (0, true));
    assert_eq!(shape(b"-4.5E-3"), (0, false));
    assert_eq!(shape(br#""\uD83D\uDE00""#), (0, true));
    assert_eq!(shape(br#""\u00e9\ud7ff\ue000""#), (0, false));
    // As deep as a manager takes data, and no deeper.
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(text(&deep(MAX_DEPTH)).text_len(), Some(2 * MAX_DEPTH));
    assert_eq!(
        text(&deep(MAX_DEPTH)).value().as_array().map(Vec::len),
        Some(1)
    );
    let err = Data::from_json(deep(MAX_DEPTH + 1), parse).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid argument: context data is nested deeper than 128 levels"
    );
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Text is held exactly when the package's parser reads it, and refused
/// with the same words where the grammar is broken: over mutations of
/// valid documents (bytes deleted, inserted, replaced; text cut).
#[test]
fn accepts_exactly_what_the_parser_reads() {
    // At the depth limit: one more bracket is one too many.
    let deep = format!("{}1{}", "[{\"a\":".repeat(64), "}]".repeat(64));
    let seeds = [
        &deep,
        r#"{"a":[1,-2.5e3,true,false,null,{"b":"c\"d\\e\u00e9\ud83d\ude00"}],"":{}}"#,
        r#" [ 0 , -0.0 , 1E+2 , 12345678901234567890 , "\/\b\f\n\r\t" ] "#,
        r#"{"x":{"y":{"z":[[[]]]}},"n":123.456,"s":"long string without escapes"}"#,
        "\"\\ud800\"",
        "[1e400, 1e-400, 1.7976931348623157e308]",
    ];
    let alphabet = b"{}[]\":,.-+0123456789eEtrufalsn \\u\n\t\x01dD8a\xc3\xa9";
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut held = 0;
    for round in 0..40_000 {
        let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
        for _ in 0..=rng.below(3) {
            let at = rng.below(bytes.len() + 1);
            let b = alphabet[rng.below(alphabet.len())];
            match rng.below(4) {
                0 if at < bytes.len() => {
                    bytes.remove(at);
                }
                1 => bytes.insert(at, b),
                2 if at < bytes.len() => bytes[at] = b,
                _ => bytes.truncate(at),
            }
        }
        let Ok(t) = String::from_utf8(bytes) else {
            continue;
        };
        let read = parse(&t, 10_000);
        match (contextkit_json::check(t.as_bytes()), &read) {
            (Ok(_), _) => {}
            // The parser may stop earlier, at what only reading finds.
            (Err(_), Err(why))
                if ["out of range", "surrogate", "hex escape"]
                    .iter()
                    .any(|w| why.contains(w)) => {}
            (Err(refused), Err(why)) => assert_eq!(&refused.describe(&t), why, "{t:?}"),
            (Err(refused), Ok(_)) => panic!("{t:?} refused ({refused:?}) but it reads"),
        }
        let within = |read: std::result::Result<Value, String>| {
            read.and_then(|v| match crate::json_depth(t.as_bytes()) <= MAX_DEPTH {
                true => Ok(v),
                false => Err("too deep".into()),
            })
        };
        let read = within(read);
        let data = Data::read_json(t.clone(), parse);
        assert_eq!(data.is_ok(), read.is_ok(), "{t:?}: {data:?} / {read:?}");
        if let (Ok(d), Ok(v)) = (data, read) {
            assert_eq!(*d.value(), v, "{t:?}");
            held += 1;
        }
        // The npm package's argument text: a control character in a
        // string stands for itself.
        let data = Data::read_json_escaping_controls(t.clone(), parse);
        let read = within(contextkit_json::parse(&t, 10_000, true).map_err(|e| e.to_string()));
        assert_eq!(data.is_ok(), read.is_ok(), "{t:?}: {data:?} / {read:?}");
        if let (Ok(d), Ok(v)) = (data, read) {
            assert_eq!(*d.value(), v, "{t:?}");
            // What is kept is JSON as it stands.
            let kept = d.as_json().map(|j| contextkit_json::check(j.as_bytes()));
            assert!(matches!(kept, Some(Ok(_))), "{t:?}: {kept:?}");
        }
    }
    assert!(held > 1_000, "only {held} mutations were JSON");
}

#[test]
fn into_value_takes_the_tree_or_reads_the_text() {
    let d = text(r#"{"a":[1]}"#);
    let shared = d.clone();
    assert_eq!(d.into_value(), json!({ "a": [1] }));
    assert_eq!(shared["a"][0], 1);
    assert_eq!(shared.into_value(), json!({ "a": [1] }));
    assert_eq!(Value::from(text("{}")), json!({}));
}

#[test]
fn equality_is_by_value() {
    assert_eq!(text(r#"{"a":1,"b":2}"#), text(r#"{"b":2,"a":1}"#));
    assert_ne!(text(r#"{"a":1}"#), text(r#"{"a":2}"#));
    assert_eq!(text(r#"{"a":1}"#), Data::from(json!({ "a": 1 })));
    assert_eq!(format!("{}", text(r#"{"a":1}"#)), r#"{"a":1}"#);
    assert_eq!(format!("{:?}", text(r#"{"a":1}"#)), r#"Json("{\"a\":1}")"#);
}
