//! `#[groundhog_runtime::rt::test]`: an async test run by `groundhog_runtime::rt::run_test`.
//!
//! The attribute only rewrites the function; the seeds, the repro line and both builds'
//! executors are `rt::run_test`'s business, so the one backend seam stays in `rt.rs`.

use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, ItemFn};

/// Marks an `async fn` with no arguments as a test run on this build's executor: under
/// simulation once per seed of a fixed range (see `rt::run_test`), in the real build once on
/// a current-thread tokio runtime.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut input = parse_macro_input!(item as ItemFn);
    if !args.is_empty() {
        let msg =
            "#[rt::test] takes no arguments (seeds come from MADSIM_TEST_SEED / MADSIM_TEST_NUM)";
        return syn::Error::new(proc_macro2::Span::call_site(), msg)
            .to_compile_error()
            .into();
    }
    if input.sig.asyncness.take().is_none() {
        let msg = "the `async` keyword is missing from the function declaration";
        return syn::Error::new_spanned(input.sig.fn_token, msg)
            .to_compile_error()
            .into();
    }
    let body = &input.block;
    let name = input.sig.ident.to_string();
    let block = quote! {
        {
            ::groundhog_runtime::rt::run_test(#name, || async move #body)
        }
    };
    *input.block = syn::parse2(block).expect("a block parses");
    quote! {
        #[::core::prelude::v1::test]
        #input
    }
    .into()
}
