/* tools/web/page.S: the console's page (page/index.html, app.js, app.css) embedded in the
 * binary, so actor-web serves it offline with nothing to install beside it. */
    .section .rodata
    .global web_page_html, web_page_html_end
    .global web_page_js, web_page_js_end
    .global web_page_css, web_page_css_end
web_page_html:
    .incbin "page/index.html"
web_page_html_end:
web_page_js:
    .incbin "page/app.js"
web_page_js_end:
web_page_css:
    .incbin "page/app.css"
web_page_css_end:
    .section .note.GNU-stack,"",@progbits
