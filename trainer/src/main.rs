fn main() {
    let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    println!("trainer: libtorch ok, sum = {}", t.sum(tch::Kind::Float).double_value(&[]));
}

#[cfg(test)]
mod tests {
    #[test]
    fn libtorch_computes() {
        let a = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0]).reshape([2, 2]);
        let b = a.matmul(&a);
        assert_eq!(Vec::<f32>::try_from(b.flatten(0, 1)).unwrap(), vec![7.0, 10.0, 15.0, 22.0]);
    }
}
