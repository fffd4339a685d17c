;; The matrix-vector product of charnext.js in WebAssembly SIMD: y += x . W.
;;
;; Built with wabt's assembler (Debian's `wabt` package, or npm's `wabt`):
;;     wat2wasm charnext/inside/web/kernel.wat -o charnext/inside/web/kernel.wasm
;; .ci/run rebuilds it from this source, and tests/test_page.py checks that the committed
;; kernel.wasm is what this file assembles to.
;;
;; W (rows x cols) is laid out in panels of 16 columns (charnext.js pads the last panel with
;; zeros): panel p holds, for each row i in turn, the 16 weights W[i, 16p .. 16p + 15]. So the
;; kernel reads W once, in order, keeping one panel's 16 sums in four 4-float registers while it
;; runs down the rows: for each row, x[i] is copied into four lanes and multiplied into them.
(module
  (memory (export "memory") 1)

  ;; y[16p + k] += sum over i of x[i] * W[i, 16p + k], for p < panels and k < 16.
  ;; Arguments are byte addresses in memory: y (panels x 16 floats), x (rows floats), W.
  (func (export "matvec")
        (param $y i32) (param $x i32) (param $w i32) (param $rows i32) (param $panels i32)
    (local $xi i32) (local $xend i32) (local $s v128)
    (local $a0 v128) (local $a1 v128) (local $a2 v128) (local $a3 v128)
    (local.set $xend (i32.add (local.get $x) (i32.shl (local.get $rows) (i32.const 2))))
    (block $done
      (loop $panel
        (br_if $done (i32.eqz (local.get $panels)))
        ;; the panel's 16 sums start from y
        (local.set $a0 (v128.load offset=0 (local.get $y)))
        (local.set $a1 (v128.load offset=16 (local.get $y)))
        (local.set $a2 (v128.load offset=32 (local.get $y)))
        (local.set $a3 (v128.load offset=48 (local.get $y)))
        (local.set $xi (local.get $x))
        (block $rows_done
          (loop $row
            (br_if $rows_done (i32.ge_u (local.get $xi) (local.get $xend)))
            (local.set $s (v128.load32_splat (local.get $xi)))  ;; x[i] in all four lanes
            (local.set $a0 (f32x4.add (local.get $a0)
                                      (f32x4.mul (local.get $s) (v128.load offset=0 (local.get $w)))))
            (local.set $a1 (f32x4.add (local.get $a1)
                                      (f32x4.mul (local.get $s) (v128.load offset=16 (local.get $w)))))
            (local.set $a2 (f32x4.add (local.get $a2)
                                      (f32x4.mul (local.get $s) (v128.load offset=32 (local.get $w)))))
            (local.set $a3 (f32x4.add (local.get $a3)
                                      (f32x4.mul (local.get $s) (v128.load offset=48 (local.get $w)))))
            (local.set $w (i32.add (local.get $w) (i32.const 64)))   ;; the next row of the panel
            (local.set $xi (i32.add (local.get $xi) (i32.const 4)))
            (br $row)))
        (v128.store offset=0 (local.get $y) (local.get $a0))
        (v128.store offset=16 (local.get $y) (local.get $a1))
        (v128.store offset=32 (local.get $y) (local.get $a2))
        (v128.store offset=48 (local.get $y) (local.get $a3))
        (local.set $y (i32.add (local.get $y) (i32.const 64)))
        (local.set $panels (i32.sub (local.get $panels) (i32.const 1)))
        (br $panel)))))
